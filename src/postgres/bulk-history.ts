import type pg from 'pg';
import type { AppliedMigration } from '../core/plan.js';
import { quoteIdent } from '../core/sql/quote.js';

const CHUNK = 400;

/**
 * Of these schemas, those with a history table: a real table, not owned by a
 * tenant's role (a view put in its place would run the tenant's code as Flotilla).
 */
export async function schemasWithHistory(client: pg.ClientBase, schemas: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>(
    `SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = 'flotilla_migrations' AND n.nspname = ANY($1) AND c.relkind = 'r'
        AND c.relowner NOT IN (SELECT oid FROM pg_catalog.pg_roles WHERE rolname LIKE 'flotilla_tenant_%')`,
    [schemas],
  );
  return rows.map((r) => r.nspname);
}

/**
 * Runs one SELECT per schema over its history table, a chunk of schemas per
 * query (`UNION ALL`): the schema's name is parameter `$k` of its chunk.
 */
export async function queryEachHistory<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  schemas: readonly string[],
  select: (table: string, param: string) => string,
): Promise<R[]> {
  const rows: R[] = [];
  for (let i = 0; i < schemas.length; i += CHUNK) {
    const chunk = schemas.slice(i, i + CHUNK);
    const query = chunk.map((schema, k) => select(`${quoteIdent(schema)}.flotilla_migrations`, `$${k + 1}::text`)).join('\nUNION ALL\n');
    rows.push(...(await client.query<R>(query, chunk)).rows);
  }
  return rows;
}

/** The history of many tenant schemas of one database in a few queries; schemas without a history table are absent. */
export async function readHistories(client: pg.ClientBase, schemas: readonly string[]): Promise<Map<string, AppliedMigration[]>> {
  const present = await schemasWithHistory(client, schemas);
  const result = new Map<string, AppliedMigration[]>(present.map((schema) => [schema, []]));
  const rows = await queryEachHistory<{ schema: string; version: string; name: string; checksum: string; remaining: number[] }>(
    client,
    present,
    (table, param) => `SELECT ${param} AS schema, version, name, checksum, remaining FROM ${table}`,
  );
  for (const row of rows) result.get(row.schema)!.push({ version: row.version, name: row.name, checksum: row.checksum, remaining: row.remaining });
  return result;
}

/**
 * Each schema's newest version and the md5 of its finished history (version, name, checksum in order;
 * ` unfinished` appended when a migration is partly applied): one query per chunk of schemas.
 */
export function historyDigests(client: pg.ClientBase, schemas: readonly string[]): Promise<{ schema: string; version: string | null; digest: string }[]> {
  return queryEachHistory<{ schema: string; version: string | null; digest: string }>(
    client,
    schemas,
    (table, param) => `SELECT ${param} AS schema, (SELECT version FROM ${table} ORDER BY version::numeric DESC LIMIT 1) AS version,
            md5(coalesce(string_agg(version || ' ' || name || ' ' || checksum, ',' ORDER BY version::numeric, name COLLATE "C") FILTER (WHERE remaining = '{}'), '')
                || CASE WHEN bool_or(remaining <> '{}') THEN ' unfinished' ELSE '' END) AS digest
            FROM ${table}`,
  );
}
