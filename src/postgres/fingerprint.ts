import type pg from 'pg';
import type { AffectedRelations, TableFingerprint } from '../core/verification.js';
import { quoteIdent, quoteQualified } from '../core/sql/quote.js';

export interface TableInfo {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  readonly primaryKey: readonly string[];
}

/**
 * The ordinary and partitioned tables of the given schemas that a plan can
 * affect, with the tables whose foreign keys cascade from them (an
 * `ON DELETE CASCADE` removes rows the statement never names). One catalog query.
 */
export async function affectedTables(client: pg.ClientBase, schemas: readonly string[] | null, affected: AffectedRelations): Promise<TableInfo[]> {
  const { rows } = await client.query<{ schema: string; table: string; columns: string[]; pk: string[] | null }>(
    `WITH RECURSIVE tables AS (
       SELECT c.oid, n.nspname AS schema, c.relname AS table
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        -- NULL schemas: every user schema (a database tenant owns its whole database).
        WHERE (n.nspname = ANY($1) OR $1 IS NULL AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'flotilla_migrations'),
     chosen AS (
       SELECT oid FROM tables WHERE $2 OR "table" = ANY($3)
       UNION
       SELECT k.conrelid FROM pg_constraint k JOIN chosen ch ON k.confrelid = ch.oid WHERE k.contype = 'f')
     SELECT t.schema, t.table,
            ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
            (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = t.oid AND i.indisprimary) AS pk
       FROM tables t WHERE t.oid IN (SELECT oid FROM chosen)
      ORDER BY 1, 2`,
    [schemas, affected.all, [...affected.names]],
  );
  return rows.map((r) => ({ schema: r.schema, table: r.table, columns: r.columns, primaryKey: r.pk ?? [] }));
}

/** One scan per table: the row count and each column's non-NULL count; then, for small tables, the keys. */
export async function fingerprintTable(client: pg.ClientBase, table: TableInfo, checksumMaxRows: number): Promise<TableFingerprint> {
  const name = quoteQualified(table.schema, table.table);
  const counts = table.columns.map((column, i) => `count(${quoteIdent(column)}) AS c${i}`);
  const { rows } = await client.query(`SELECT count(*) AS rows${counts.length ? `, ${counts.join(', ')}` : ''} FROM ${name}`);
  const row = rows[0] as Record<string, string>;
  const total = Number(row.rows);
  const columns = Object.fromEntries(table.columns.map((column, i) => [column, Number(row[`c${i}`])]));
  let keys: string[] | null = null;
  if (table.primaryKey.length > 0 && total <= checksumMaxRows) {
    const key = table.primaryKey.length === 1 ? quoteIdent(table.primaryKey[0]!) : `ROW(${table.primaryKey.map(quoteIdent).join(', ')})`;
    const result = await client.query<{ keys: string[] | null }>(`SELECT array_agg(hashtextextended(${key}::text, 0)::text) AS keys FROM ${name}`);
    keys = result.rows[0]?.keys ?? [];
  }
  return { schema: table.schema, table: table.table, rows: total, columns, keys };
}

/** The same tables after the plan's statements, following renames; null for a table that is gone. */
export async function fingerprintAfter(
  client: pg.ClientBase,
  before: readonly TableInfo[],
  renames: { tables: ReadonlyMap<string, string>; columns: ReadonlyMap<string, string> },
  checksumMaxRows: number,
): Promise<Map<string, TableFingerprint | null>> {
  const result = new Map<string, TableFingerprint | null>();
  for (const table of before) {
    const name = renames.tables.get(table.table) ?? table.table;
    const { rows } = await client.query<{ columns: string[] | null; pk: string[] | null }>(
      `SELECT ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
              (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
      [table.schema, name],
    );
    const found = rows[0];
    if (!found) {
      result.set(`${table.schema}.${table.table}`, null);
      continue;
    }
    const now = await fingerprintTable(client, { schema: table.schema, table: name, columns: found.columns ?? [], primaryKey: found.pk ?? [] }, checksumMaxRows);
    // Report under the names the table had before, so the two fingerprints line up.
    result.set(`${table.schema}.${table.table}`, { ...now, table: table.table });
  }
  return result;
}

/**
 * Fingerprints of many tables: one query counts them all, and only tables
 * holding rows get the per-column scan (an empty table cannot lose anything).
 */
export async function fingerprintTables(client: pg.ClientBase, tables: readonly TableInfo[], checksumMaxRows: number): Promise<TableFingerprint[]> {
  if (tables.length === 0) return [];
  const counts = await client.query<{ i: number; n: string }>(
    tables.map((t, i) => `SELECT ${i} AS i, count(*) AS n FROM ${quoteQualified(t.schema, t.table)}`).join(' UNION ALL '),
  );
  const rows = new Map(counts.rows.map((r) => [Number(r.i), Number(r.n)]));
  const result: TableFingerprint[] = [];
  for (const [i, table] of tables.entries()) {
    if ((rows.get(i) ?? 0) > 0) result.push(await fingerprintTable(client, table, checksumMaxRows));
    else result.push({ schema: table.schema, table: table.table, rows: 0, columns: Object.fromEntries(table.columns.map((c) => [c, 0])), keys: table.primaryKey.length > 0 ? [] : null });
  }
  return result;
}
