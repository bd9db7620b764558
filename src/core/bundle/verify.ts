import type { KeyObject } from 'node:crypto';
import semver from 'semver';
import { sha256 } from '../checksum.js';
import { FlotillaError } from '../errors.js';
import type { ArchiveLimits } from './archive.js';
import { DEFAULT_LIMITS, readArchive } from './archive.js';
import type { BundleManifest } from './manifest.js';
import { claimedKeyId, MANIFEST_FILE, parseManifest, SIGNATURE_FILE } from './manifest.js';
import { keyIdOf, signatureValid } from './signing.js';

/** A bundle whose signature, files and dates all checked out; its files are in memory, nothing was written. */
export interface VerifiedBundle {
  readonly manifest: BundleManifest;
  /** Every file the manifest lists, by path (manifest and signature excluded). */
  readonly files: ReadonlyMap<string, Buffer>;
  /** SHA-256 of the bundle file as a whole: what the site records as installed. */
  readonly digest: string;
  readonly sizeBytes: number;
}

/** Bundles that verifyBundle returned: an object merely shaped like one is not applied. */
const verified = new WeakSet<VerifiedBundle>();

/** Whether `verifyBundle` made this object (the only way to get a bundle that apply accepts). */
export function wasVerified(bundle: VerifiedBundle): boolean {
  return verified.has(bundle);
}

/** Refuses a bundle past its expiry (checked again when apply starts: it may have been verified long before). */
export function assertNotExpired(manifest: BundleManifest, now: Date): void {
  if (manifest.expiresAt !== null && now.getTime() > Date.parse(manifest.expiresAt)) {
    throw new FlotillaError('FLO_BUNDLE_EXPIRED', `The bundle is refused: it expired on ${manifest.expiresAt}.`, {
      hint: `Ask your vendor for the current release of ${manifest.product}: an expired bundle may be missing fixes made since.`,
      meta: { expiresAt: manifest.expiresAt, now: now.toISOString() },
    });
  }
}

export interface VerifyOptions {
  readonly now?: Date;
  readonly limits?: ArchiveLimits;
  /** The running Flotilla's version, checked against the manifest's range. */
  readonly flotillaVersion: string;
}

/**
 * Checks a bundle entirely offline, in this order: the archive's shape (only
 * plain files at safe paths, bounded size), the signature over the manifest by
 * the trusted key, every file against the manifest (no file changed, missing or
 * extra), the expiry, and the Flotilla version it needs. The first problem found
 * is thrown with its own code.
 */
export async function verifyBundle(bytes: Buffer, publicKey: KeyObject, options: VerifyOptions): Promise<VerifiedBundle> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const entries = await readArchive(bytes, limits);
  const manifestBytes = entries.get(MANIFEST_FILE);
  const signature = entries.get(SIGNATURE_FILE);
  if (!manifestBytes || !signature) throw missing(manifestBytes ? SIGNATURE_FILE : MANIFEST_FILE, true);
  const trusted = keyIdOf(publicKey);
  if (!signatureValid(manifestBytes, signature, publicKey)) {
    const claimed = claimedKeyId(manifestBytes);
    if (claimed !== undefined && claimed !== trusted) {
      throw new FlotillaError('FLO_BUNDLE_WRONG_KEY', `The bundle is refused: it was signed with key ${claimed}, and this site trusts key ${trusted} only.`, {
        hint: 'Make sure the bundle comes from your vendor, and that --pubkey is the public key your vendor gave you for this product.',
        meta: { keyId: claimed, trusted },
      });
    }
    throw new FlotillaError('FLO_BUNDLE_SIGNATURE_INVALID', 'The bundle is refused: its signature does not match its manifest, so it was changed after it was signed.', {
      hint: 'Do not install it. Copy the bundle again from your vendor; if this happens again, tell them.',
      meta: { trusted },
    });
  }
  const manifest = parseManifest(manifestBytes);
  if (!manifest) {
    throw new FlotillaError('FLO_BUNDLE_NEEDS_FLOTILLA', 'The bundle is signed by the trusted key, but its manifest is in a format this Flotilla does not know.', {
      hint: 'It was probably built by a newer Flotilla: update Flotilla on this machine (your vendor ships the version it needs), then apply the bundle again.',
      meta: { needed: 'a newer Flotilla', running: options.flotillaVersion },
    });
  }
  const files = new Map<string, Buffer>();
  for (const listed of manifest.files) {
    const file = entries.get(listed.path);
    if (!file) throw missing(listed.path, false);
    if (file.length !== listed.size || sha256(file) !== listed.sha256) {
      throw new FlotillaError('FLO_BUNDLE_FILE_CHANGED', `The bundle is refused: ${listed.path} differs from what the signed manifest records.`, {
        hint: 'Do not install it: the file was changed after the vendor signed the bundle. Copy the bundle again from your vendor.',
        meta: { file: listed.path, expected: listed.sha256, actual: sha256(file) },
      });
    }
    files.set(listed.path, file);
  }
  for (const path of entries.keys()) {
    if (path === MANIFEST_FILE || path === SIGNATURE_FILE || files.has(path)) continue;
    throw new FlotillaError('FLO_BUNDLE_FILE_UNLISTED', `The bundle is refused: it holds ${path}, which its signed manifest does not list.`, {
      hint: 'Do not install it: a file was added after the vendor signed the bundle. Copy the bundle again from your vendor.',
      meta: { file: path },
    });
  }
  assertNotExpired(manifest, options.now ?? new Date());
  if (!semver.satisfies(options.flotillaVersion, manifest.flotilla, { includePrerelease: true })) {
    throw new FlotillaError('FLO_BUNDLE_NEEDS_FLOTILLA', `The bundle needs Flotilla ${manifest.flotilla}, and this is Flotilla ${options.flotillaVersion}.`, {
      hint: 'Update Flotilla on this machine first (your vendor ships the version it needs), then apply the bundle again.',
      meta: { needed: manifest.flotilla, running: options.flotillaVersion },
    });
  }
  const bundle: VerifiedBundle = Object.freeze({ manifest, files, digest: sha256(bytes), sizeBytes: bytes.length });
  verified.add(bundle);
  return bundle;
}

function missing(path: string, structural: boolean): FlotillaError {
  return new FlotillaError('FLO_BUNDLE_FILE_MISSING', `The bundle is refused: ${path} is missing from it${structural ? '' : ', though its signed manifest lists it'}.`, {
    hint: 'Do not install it. Copy the bundle again from your vendor: the copy you have is incomplete or was changed.',
    meta: { file: path },
  });
}
