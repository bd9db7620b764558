import semver from 'semver';
import { z } from 'zod';

export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.sig';
export const MIGRATIONS_FOLDER = 'migrations';
export const APP_FOLDER = 'app';
export const BUNDLE_FORMAT = 'flotilla-bundle/1';

const version = z.string().refine((v) => semver.valid(v) === v, 'a semantic version such as 2.1.0');
const instant = z.string().datetime({ offset: false });

export const manifestSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  product: z.string().min(1).max(100),
  version,
  /** The oldest installed version this bundle upgrades from; null: any. */
  minFrom: version.nullable(),
  createdAt: instant,
  /** After this instant the bundle is refused; null: never. */
  expiresAt: instant.nullable(),
  /** The Flotilla versions that can apply it, as a semver range. */
  flotilla: z.string().refine((r) => semver.validRange(r) !== null, 'a semver range'),
  /** The signing key's id: the first 16 hex digits of the SHA-256 of its public key. */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  /** The newest migration's version (null: none), and how many there are. */
  migrations: z.strictObject({ newest: z.string().nullable(), count: z.number().int().min(0) }),
  /** Whether an application payload is inside (under app/). */
  app: z.boolean(),
  files: z.array(z.strictObject({ path: z.string(), size: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/), executable: z.literal(true).optional() })),
});

export type BundleManifest = z.output<typeof manifestSchema>;

/** The manifest's exact bytes, which the signature covers. */
export function manifestBytes(manifest: BundleManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}

/** Parses a manifest; undefined when it is not one (the caller says why in its own terms). */
export function parseManifest(bytes: Buffer): BundleManifest | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = manifestSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** The key id a manifest claims, read without trusting it (only to name the key that signed a foreign bundle). */
export function claimedKeyId(bytes: Buffer): string | undefined {
  try {
    const id = (JSON.parse(bytes.toString('utf8')) as { keyId?: unknown }).keyId;
    return typeof id === 'string' ? id.slice(0, 64) : undefined;
  } catch {
    return undefined;
  }
}

/** `90d`, `12h`, `30m` or `none` as milliseconds (null for none); undefined when it is none of these. */
export function parseExpiry(text: string): number | null | undefined {
  if (text === 'none' || text === 'never') return null;
  const match = /^(\d{1,5})(d|h|m)$/.exec(text);
  if (!match) return undefined;
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[match[2] as 'd' | 'h' | 'm'];
  const ms = Number(match[1]) * unit;
  return ms > 0 ? ms : undefined;
}
