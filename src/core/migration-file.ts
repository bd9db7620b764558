import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from './checksum.js';
import { FlotillaError } from './errors.js';
import { firstInvalidByte } from './utf8.js';

/** One migration as found on disk, before parsing. */
export interface MigrationFile {
  /** `<version>_<name>`: the identity recorded in history. */
  readonly id: string;
  readonly version: string;
  readonly name: string;
  /** Path relative to the migrations directory, for messages. */
  readonly path: string;
  readonly sql: string;
  readonly checksum: string;
  /** `<version>_<name>.verify.sql` (or `verify.sql` in a Prisma folder): queries that must hold before commit. */
  readonly verify?: { readonly path: string; readonly sql: string };
}

/** A directory entry as `readdir` gives it, not following symbolic links. */
export interface MigrationDirEntry {
  readonly name: string;
  isDirectory(): boolean;
  isSymbolicLink?(): boolean;
}

/** The narrow file-system surface discovery needs; tests may pass their own. */
export interface MigrationFs {
  readdir(path: string): Promise<MigrationDirEntry[]>;
  readFile(path: string): Promise<Buffer>;
}

export const nodeMigrationFs: MigrationFs = {
  readdir: (path) => readdir(path, { withFileTypes: true }),
  readFile: (path) => readFile(path),
};

const FLAT_FILE = /^(\d+)_([A-Za-z0-9][\w.-]*)\.sql$/;
const PRISMA_DIR = /^(\d+)_([A-Za-z0-9][\w.-]*)$/;
/** Files that live beside migrations and are not migrations. */
const IGNORED = new Set(['flotilla.sum', 'migration_lock.toml', 'README.md', '.gitkeep']);

export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The newest version among applied migrations, or null when there are none. */
export function newestVersion(applied: readonly { version: string }[]): string | null {
  return applied.reduce<string | null>((newest, a) => (newest === null || compareVersions(a.version, newest) > 0 ? a.version : newest), null);
}

/** Order of migrations: by version, then by name (two Prisma folders may share a timestamp). */
export function compareMigrations(a: { version: string; name: string }, b: { version: string; name: string }): number {
  return compareVersions(a.version, b.version) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Reads `<version>_<name>.sql` files and Prisma's `<version>_<name>/migration.sql`
 * folders, ordered by version. Every `.sql` file in the directory, whatever the
 * case of its extension, is either read as a migration or refused, never
 * skipped: a typo would otherwise leave a migration unapplied without a word.
 * Symbolic links are refused, so that no migration comes from outside the
 * directory; NUL bytes and invalid UTF-8 are refused with their byte offset.
 */
export async function readMigrationDir(dir: string, fs: MigrationFs = nodeMigrationFs): Promise<MigrationFile[]> {
  let entries: MigrationDirEntry[];
  try {
    entries = await fs.readdir(dir);
  } catch (cause) {
    throw new FlotillaError('FLO_MIGRATIONS_DIR_MISSING', `Migrations directory ${dir} cannot be read.`, {
      hint: 'Run `flotilla init` to create it, or set `migrationsDir` in flotilla.config.json (or FLOTILLA_MIGRATIONS_DIR).',
      meta: { dir },
      cause,
    });
  }
  const found: MigrationFile[] = [];
  const verifyFiles = new Map<string, { path: string; sql: string }>();
  for (const entry of entries) {
    // flotilla.sum decides what runs: it must not come from elsewhere either.
    if (IGNORED.has(entry.name) && !(entry.name === 'flotilla.sum' && entry.isSymbolicLink?.())) continue;
    if (entry.isSymbolicLink?.())
      throw refused(entry.name, 'is a symbolic link', 'Flotilla does not follow links, so that no migration can come from outside the directory: put the file itself here.');
    if (entry.name.startsWith('.')) {
      if (isSqlName(entry.name))
        throw refused(entry.name, 'is a hidden file', 'Hidden files are not read as migrations: rename it without the leading "." or move it out of the migrations directory.');
      continue;
    }
    if (entry.isDirectory()) {
      const match = PRISMA_DIR.exec(entry.name);
      if (!match) {
        await refuseSqlInside(dir, entry.name, fs);
        continue;
      }
      found.push(await prismaMigration(dir, entry.name, match, fs));
      continue;
    }
    if (!isSqlName(entry.name)) continue;
    if (!entry.name.endsWith('.sql'))
      throw refused(entry.name, 'has an extension in capitals', `Rename it with a lowercase extension (${entry.name.slice(0, -4)}.sql) so that it is applied.`);
    if (entry.name.endsWith('.verify.sql')) {
      verifyFiles.set(entry.name.slice(0, -'.verify.sql'.length), { path: entry.name, sql: text(entry.name, await fs.readFile(join(dir, entry.name))) });
      continue;
    }
    const match = FLAT_FILE.exec(entry.name);
    if (!match) {
      throw new FlotillaError('FLO_MIGRATION_NAME_INVALID', `Migration file ${entry.name} does not follow <version>_<name>.sql.`, {
        hint: 'Rename it like 0002_add_loans.sql (digits, "_", a name), or create new files with `flotilla migration new <name>`.',
        meta: { file: entry.name },
      });
    }
    found.push(toMigration(match, entry.name, await fs.readFile(join(dir, entry.name))));
  }
  for (const [id, verify] of verifyFiles) {
    const index = found.findIndex((m) => m.id === id);
    if (index === -1) {
      throw new FlotillaError('FLO_MIGRATION_NAME_INVALID', `Verify file ${verify.path} has no migration ${id}.sql beside it.`, {
        hint: 'Name a verify file after its migration: <version>_<name>.verify.sql next to <version>_<name>.sql.',
        meta: { file: verify.path },
      });
    }
    found[index] = { ...found[index]!, verify };
  }
  found.sort(compareMigrations);
  for (let i = 1; i < found.length; i++) {
    const prev = found[i - 1]!;
    const cur = found[i]!;
    if (compareMigrations(prev, cur) === 0) {
      throw new FlotillaError('FLO_MIGRATION_DUPLICATE_VERSION', `Migrations ${prev.path} and ${cur.path} are the same migration ${cur.id}.`, {
        hint: 'Keep one of them: a migration is either a file or a Prisma folder, not both.',
        meta: { id: cur.id, files: [prev.path, cur.path] },
      });
    }
  }
  return found;
}

function isSqlName(name: string): boolean {
  return name.toLowerCase().endsWith('.sql');
}

/** A Prisma folder holds `migration.sql` and, optionally, `verify.sql`; any other SQL file in it is refused. */
async function prismaMigration(dir: string, folder: string, match: RegExpExecArray, fs: MigrationFs): Promise<MigrationFile> {
  for (const inner of await fs.readdir(join(dir, folder))) {
    const path = `${folder}/${inner.name}`;
    if (inner.isSymbolicLink?.())
      throw refused(path, 'is a symbolic link', 'Flotilla does not follow links, so that no migration can come from outside the directory: put the file itself here.');
    if (inner.isDirectory() && !inner.name.startsWith('.')) await refuseSqlInside(dir, path, fs);
    else if (isSqlName(inner.name) && inner.name !== 'migration.sql' && inner.name !== 'verify.sql') {
      throw refused(
        path,
        'is not read: a Prisma migration folder holds migration.sql (and verify.sql) only',
        'Rename it to migration.sql (lowercase), or move it to a migration folder of its own.',
      );
    }
  }
  const path = `${folder}/migration.sql`;
  const bytes = await fs.readFile(join(dir, path)).catch(() => undefined);
  if (bytes === undefined) throw refused(folder, 'is named like a migration but holds no migration.sql', 'Add its migration.sql, or remove the folder.');
  const verify = await fs.readFile(join(dir, folder, 'verify.sql')).catch(() => undefined);
  return { ...toMigration(match, path, bytes), ...(verify ? { verify: { path: `${folder}/verify.sql`, sql: text(`${folder}/verify.sql`, verify) } } : {}) };
}

/** A folder that is not a migration may hold other files, but no SQL file that would look like a forgotten migration. */
async function refuseSqlInside(dir: string, folder: string, fs: MigrationFs): Promise<void> {
  for (const inner of await fs.readdir(join(dir, folder)).catch(() => [])) {
    if (inner.name.startsWith('.') || inner.isSymbolicLink?.()) continue;
    const path = `${folder}/${inner.name}`;
    if (inner.isDirectory()) await refuseSqlInside(dir, path, fs);
    else if (isSqlName(inner.name)) {
      throw refused(
        path,
        'is in a folder that is not a migration, so it would never be applied',
        'Move it to the top of the migrations directory as <version>_<name>.sql, or name its folder <version>_<name> (the Prisma layout), or keep it outside the migrations directory.',
      );
    }
  }
}

function refused(path: string, what: string, hint: string): FlotillaError {
  return new FlotillaError('FLO_MIGRATION_FILE_INVALID', `${path} in the migrations directory ${what}.`, { hint, meta: { file: path } });
}

/** The file's text; a NUL byte or invalid UTF-8 is refused with where it is. */
function text(path: string, bytes: Buffer): string {
  const bad = firstInvalidByte(bytes);
  if (!bad) return bytes.toString('utf8');
  const before = bytes.subarray(0, bad.offset);
  const line = before.filter((b) => b === 10).length + 1;
  throw new FlotillaError('FLO_MIGRATION_FILE_INVALID', `${path}: ${bad.reason} at byte ${bad.offset} (line ${line}).`, {
    hint:
      bad.reason === 'NUL byte'
        ? 'Remove the NUL byte: PostgreSQL would read the file only up to it, so everything after it would silently not run.'
        : 'Save the file as UTF-8 (it may be in Latin-1 or Windows-1252); PostgreSQL migrations must be UTF-8 text.',
    meta: { file: path, byte: bad.offset, line },
  });
}

function toMigration(match: RegExpExecArray, path: string, bytes: Buffer): MigrationFile {
  const version = match[1]!;
  const name = match[2]!;
  return { id: `${version}_${name}`, version, name, path, sql: text(path, bytes), checksum: sha256(bytes) };
}
