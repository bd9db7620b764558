import { sha256 } from '../../src/core/checksum.js';
import type { ParsedMigration } from '../../src/core/migration.js';
import { parseMigration } from '../../src/core/migration.js';
import { loadSqlParser } from '../../src/core/sql/parser.js';

await loadSqlParser();

/** A parsed migration from inline SQL, for tests of the pure core. */
export function migration(id: string, sql: string): ParsedMigration {
  const [version, ...rest] = id.split('_');
  return parseMigration({ id, version: version!, name: rest.join('_'), path: `${id}.sql`, sql, checksum: sha256(sql) });
}
