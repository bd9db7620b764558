import { lstat, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import semver from 'semver';
import type { ResolvedConfig } from '../config/config.js';
import type { ArchiveFile } from '../core/bundle/archive.js';
import { assertSafePath, packArchive } from '../core/bundle/archive.js';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { APP_FOLDER, BUNDLE_FORMAT, MANIFEST_FILE, MIGRATIONS_FOLDER, manifestBytes, parseExpiry, SIGNATURE_FILE } from '../core/bundle/manifest.js';
import { keyIdOf, privateKeyFrom, signBytes } from '../core/bundle/signing.js';
import { sha256 } from '../core/checksum.js';
import { FlotillaError } from '../core/errors.js';
import { loadMigrationSet, readMigrationFiles } from '../core/migration-set.js';
import { SUM_FILE } from '../core/sum-file.js';
import { flotillaVersion } from './flotilla-version.js';

export interface BuildOptions {
  readonly version: string;
  /** The vendor's private key file (flotilla-signing.key). */
  readonly key: string;
  /** The oldest installed version this release upgrades from. */
  readonly minFrom?: string;
  /** `90d`, `12h`, `30m`, or `none` (the default). */
  readonly expires?: string;
  /** A directory shipped as the application payload. */
  readonly app?: string;
  /** The bundle file (default `<product>-<version>.flotilla.tgz` in the working directory). */
  readonly out?: string;
  /** The creation time recorded, which with the same files gives the same bytes (default: SOURCE_DATE_EPOCH, else now). */
  readonly createdAt?: Date;
  readonly cwd?: string;
}

export interface BuiltBundle {
  readonly file: string;
  readonly manifest: BundleManifest;
  readonly digest: string;
  readonly sizeBytes: number;
}

/**
 * Builds one signed file for a release: the configured migrations with their
 * flotilla.sum (checked and parsed first), an optional application payload, and
 * a manifest of every file's SHA-256, signed with Ed25519. Reproducible: the
 * same files, options and creation time give the same bytes.
 */
export async function buildBundle(config: ResolvedConfig, options: BuildOptions): Promise<BuiltBundle> {
  const cwd = options.cwd ?? process.cwd();
  assertVersion('--version', options.version);
  if (options.minFrom !== undefined) {
    assertVersion('--min-from', options.minFrom);
    if (semver.gt(options.minFrom, options.version))
      throw usage(`--min-from ${options.minFrom} is above --version ${options.version}.`, 'Give the oldest release this one upgrades from, at or below --version.');
  }
  const expiresIn = parseExpiry(options.expires ?? 'none');
  if (expiresIn === undefined) throw usage(`--expires ${JSON.stringify(options.expires)} is not a duration.`, 'Give days, hours or minutes, as in 90d, 12h or 30m, or none.');
  const createdAt = options.createdAt ?? sourceDateEpoch() ?? new Date();
  const key = privateKeyFrom(await readFile(resolve(cwd, options.key), 'utf8').catch(() => missingKey(options.key)), options.key);

  const files = [...(await migrationFiles(config.migrationsDir)), ...(options.app ? await appFiles(resolve(cwd, options.app)) : [])];
  const set = await loadMigrationSet(config.migrationsDir);
  const product = await productName(config);
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    product,
    version: options.version,
    minFrom: options.minFrom ?? null,
    createdAt: createdAt.toISOString(),
    expiresAt: expiresIn === null ? null : new Date(createdAt.getTime() + expiresIn).toISOString(),
    flotilla: `>=${flotillaVersion()}`,
    keyId: keyIdOf(key),
    migrations: { newest: set.migrations.at(-1)?.version ?? null, count: set.migrations.length },
    app: options.app !== undefined,
    files: files
      .map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256(f.bytes), ...(f.executable ? { executable: true as const } : {}) }))
      .sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
  const signed = manifestBytes(manifest);
  const bytes = await packArchive([{ path: MANIFEST_FILE, bytes: signed }, { path: SIGNATURE_FILE, bytes: signBytes(signed, key) }, ...files], createdAt);
  const file = resolve(cwd, options.out ?? `${product.replace(/[^\w.-]+/g, '-')}-${options.version}.flotilla.tgz`);
  const partial = `${file}.partial`;
  await writeFile(partial, bytes);
  await rename(partial, file);
  return { file, manifest, digest: sha256(bytes), sizeBytes: bytes.length };
}

/** Every migration, its verify file and flotilla.sum, as `migrations/<path>`; refused without flotilla.sum. */
async function migrationFiles(dir: string): Promise<ArchiveFile[]> {
  const { files, sum } = await readMigrationFiles(dir);
  if (sum === undefined)
    throw usage(`${dir} has no ${SUM_FILE}, so sites could not tell a changed migration.`, 'Run `flotilla migration hash`, commit the file, then build again.');
  const paths = [SUM_FILE, ...files.flatMap((f) => [f.path, ...(f.verify ? [f.verify.path] : [])])];
  return Promise.all(paths.map(async (path) => ({ path: `${MIGRATIONS_FOLDER}/${path}`, bytes: await readFile(join(dir, path)) })));
}

/** Every regular file under the payload directory, as `app/<path>`; links and special files are refused. */
async function appFiles(root: string, relative = ''): Promise<ArchiveFile[]> {
  const here = join(root, relative);
  const entries = await readdir(here, { withFileTypes: true }).catch(() => {
    throw usage(`--app ${root} is not a readable directory.`, 'Give the directory holding the application files to ship.');
  });
  const files: ArchiveFile[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      files.push(...(await appFiles(root, path)));
      continue;
    }
    if (!entry.isFile())
      throw usage(`${join(root, path)} is not a regular file (a link or a device).`, 'A bundle carries regular files only: copy what the link points to, or leave it out.');
    try {
      assertSafePath(`${APP_FOLDER}/${path}`);
    } catch {
      throw usage(`${join(root, path)} has a name a bundle cannot carry.`, 'Use letters, digits, ".", "_", "-", "+", "@" and "=" in file names, at most 255 characters in all.');
    }
    const stat = await lstat(join(root, path));
    files.push({ path: `${APP_FOLDER}/${path}`, bytes: await readFile(join(root, path)), executable: (stat.mode & 0o111) !== 0 });
  }
  return files;
}

/** The product's name: the configured one, else the project's package.json name, else its folder's name. */
export async function productName(config: ResolvedConfig): Promise<string> {
  if (config.bundles.product) return config.bundles.product;
  const pkg = await readFile(join(config.projectDir, 'package.json'), 'utf8').then(
    (text) => (JSON.parse(text) as { name?: unknown }).name,
    () => undefined,
  );
  return typeof pkg === 'string' && pkg.length > 0 ? pkg.slice(0, 100) : basename(config.projectDir);
}

function sourceDateEpoch(): Date | undefined {
  const value = process.env.SOURCE_DATE_EPOCH;
  return value && /^\d{1,12}$/.test(value) ? new Date(Number(value) * 1000) : undefined;
}

function assertVersion(flag: string, value: string): void {
  if (semver.valid(value) !== value) throw usage(`${flag} ${JSON.stringify(value.slice(0, 60))} is not a semantic version.`, 'Write it as MAJOR.MINOR.PATCH, for example 2.1.0.');
}

function missingKey(path: string): never {
  throw new FlotillaError('FLO_KEY_INVALID', `The signing key ${path} cannot be read.`, {
    hint: 'Give the flotilla-signing.key written by `flotilla keys generate --out <dir>`.',
    meta: { file: path },
  });
}

function usage(message: string, hint: string): FlotillaError {
  return new FlotillaError('FLO_USAGE', message, { hint });
}
