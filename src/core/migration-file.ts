import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from './checksum.js';
import { FlotillaError } from './errors.js';

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

/** The narrow file-system surface discovery needs; tests may pass their own. */
export interface MigrationFs {
  readdir(path: string): Promise<{ name: string; isDirectory(): boolean }[]>;
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
 * folders, ordered by version. A `.sql` file that does not follow the naming is an
 * error rather than silently ignored: a typo would otherwise skip a migration.
 */
export async function readMigrationDir(dir: string, fs: MigrationFs = nodeMigrationFs): Promise<MigrationFile[]> {
  let entries: { name: string; isDirectory(): boolean }[];
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
    if (IGNORED.has(entry.name) || entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) {
      const match = PRISMA_DIR.exec(entry.name);
      if (!match) continue;
      const path = `${entry.name}/migration.sql`;
      const bytes = await fs.readFile(join(dir, path)).catch(() => undefined);
      if (bytes === undefined) continue;
      const verify = await fs.readFile(join(dir, entry.name, 'verify.sql')).catch(() => undefined);
      found.push({ ...toMigration(match, path, bytes), ...(verify ? { verify: { path: `${entry.name}/verify.sql`, sql: verify.toString('utf8') } } : {}) });
      continue;
    }
    if (entry.name.endsWith('.verify.sql')) {
      verifyFiles.set(entry.name.slice(0, -'.verify.sql'.length), { path: entry.name, sql: (await fs.readFile(join(dir, entry.name))).toString('utf8') });
      continue;
    }
    if (!entry.name.endsWith('.sql')) continue;
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

function toMigration(match: RegExpExecArray, path: string, bytes: Buffer): MigrationFile {
  const version = match[1]!;
  const name = match[2]!;
  return { id: `${version}_${name}`, version, name, path, sql: bytes.toString('utf8'), checksum: sha256(bytes) };
}
