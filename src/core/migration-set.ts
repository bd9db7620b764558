import { join } from 'node:path';
import type { ParsedMigration } from './migration.js';
import { parseMigration } from './migration.js';
import type { MigrationFs } from './migration-file.js';
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
  const files = await readMigrationDir(dir, fs);
  const sum = await fs.readFile(join(dir, SUM_FILE)).then(
    (bytes) => bytes.toString('utf8'),
    () => undefined,
  );
  if (sum !== undefined) verifySumFile(sum, files, dir);
  await loadSqlParser();
  const migrations = files.map(parseMigration);
  const createdSchemas = [...new Set(migrations.flatMap((m) => m.schemasCreated))];
  return { dir, migrations, createdSchemas, hasSumFile: sum !== undefined };
}
