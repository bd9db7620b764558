import { join } from 'node:path';
import type { ParsedMigration } from './migration.js';
import { parseMigration } from './migration.js';
import type { MigrationFile, MigrationFs } from './migration-file.js';
import { nodeMigrationFs, readMigrationDir } from './migration-file.js';
import { loadSqlParser } from './sql/parser.js';
import { SUM_FILE, verifySumFile } from './sum-file.js';

/** A migrations directory, read, checked against `flotilla.sum` and parsed. */
export interface MigrationSet {
  readonly dir: string;
  readonly migrations: readonly ParsedMigration[];
  /** Every schema any migration creates; schema tenants get their own copy of each. */
  readonly createdSchemas: readonly string[];
  readonly hasSumFile: boolean;
}

export async function loadMigrationSet(dir: string, fs: MigrationFs = nodeMigrationFs): Promise<MigrationSet> {
  const { files, sum } = await readMigrationFiles(dir, fs);
  return buildMigrationSet(dir, files, sum);
}

/** The files and `flotilla.sum` as on disk, read and hashed but not parsed (cheap: a cache key). */
export async function readMigrationFiles(dir: string, fs: MigrationFs = nodeMigrationFs): Promise<{ files: MigrationFile[]; sum: string | undefined }> {
  const files = await readMigrationDir(dir, fs);
  const sum = await fs.readFile(join(dir, SUM_FILE)).then(
    (bytes) => bytes.toString('utf8'),
    () => undefined,
  );
  return { files, sum };
}

/** Checks the files against `flotilla.sum` and parses them. */
export async function buildMigrationSet(dir: string, files: readonly MigrationFile[], sum: string | undefined): Promise<MigrationSet> {
  if (sum !== undefined) verifySumFile(sum, files, dir);
  await loadSqlParser();
  const migrations = files.map(parseMigration);
  const createdSchemas = [...new Set(migrations.flatMap((m) => m.schemasCreated))];
  return { dir, migrations, createdSchemas, hasSumFile: sum !== undefined };
}
