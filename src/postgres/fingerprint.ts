import type pg from 'pg';
import type { AffectedRelations, TableFingerprint } from '../core/verification.js';
import { quoteIdent, quoteQualified } from '../core/sql/quote.js';

export interface TableInfo {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  /** Columns declared NOT NULL: their values number the rows, so they need no counting of their own. */
  readonly notNull: readonly string[];
  readonly primaryKey: readonly string[];
}

/** The columns, NOT NULL columns and primary key of the table whose oid is `c.oid`, as SQL select items. */
const COLUMN_INFO = `ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull) AS not_null,
       (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = c.oid AND i.indisprimary) AS pk`;

interface ColumnInfoRow {
  columns: string[] | null;
  not_null: string[] | null;
  pk: string[] | null;
}

/**
 * The ordinary and partitioned tables of the given schemas that a plan can
 * affect, with the tables whose foreign keys cascade from them (an
 * `ON DELETE CASCADE` removes rows the statement never names). One catalog query.
 */
export async function affectedTables(client: pg.ClientBase, schemas: readonly string[] | null, affected: AffectedRelations): Promise<TableInfo[]> {
  const { rows } = await client.query<{ schema: string; table: string } & ColumnInfoRow>(
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
     SELECT c.schema, c.table, ${COLUMN_INFO}
       FROM tables c WHERE c.oid IN (SELECT oid FROM chosen)
      ORDER BY 1, 2`,
    [schemas, affected.all, [...affected.names]],
  );
  return rows.map((r) => ({ schema: r.schema, table: r.table, ...tableColumns(r) }));
}

function tableColumns(row: ColumnInfoRow): Pick<TableInfo, 'columns' | 'notNull' | 'primaryKey'> {
  return { columns: row.columns ?? [], notNull: row.not_null ?? [], primaryKey: row.pk ?? [] };
}

/** One scan per table: the row count and each nullable column's non-NULL count; then, for small tables, the keys. */
export async function fingerprintTable(client: pg.ClientBase, table: TableInfo, checksumMaxRows: number): Promise<TableFingerprint> {
  const name = quoteQualified(table.schema, table.table);
  const notNull = new Set(table.notNull);
  const counts = table.columns.flatMap((column, i) => (notNull.has(column) ? [] : [`count(${quoteIdent(column)}) AS c${i}`]));
  const { rows } = await client.query(`SELECT count(*) AS rows${counts.length ? `, ${counts.join(', ')}` : ''} FROM ${name}`);
  const row = rows[0] as Record<string, string>;
  const total = Number(row.rows);
  const columns = Object.fromEntries(table.columns.map((column, i) => [column, notNull.has(column) ? total : Number(row[`c${i}`])]));
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
    const { rows } = await client.query<ColumnInfoRow>(
      `SELECT ${COLUMN_INFO} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
      [table.schema, name],
    );
    const found = rows[0];
    if (!found) {
      result.set(`${table.schema}.${table.table}`, null);
      continue;
    }
    const now = await fingerprintTable(client, { schema: table.schema, table: name, ...tableColumns(found) }, checksumMaxRows);
    // Report under the names the table had before, so the two fingerprints line up.
    result.set(`${table.schema}.${table.table}`, { ...now, table: table.table });
  }
  return result;
}

/**
 * Fingerprints of many tables: one query finds which hold any row (reading at
 * most one row of each), and only those get the counting scan (an empty table
 * cannot lose anything).
 */
export async function fingerprintTables(client: pg.ClientBase, tables: readonly TableInfo[], checksumMaxRows: number): Promise<TableFingerprint[]> {
  if (tables.length === 0) return [];
  const found = await client.query<{ i: number }>(
    tables.map((t, i) => `SELECT ${i} AS i WHERE EXISTS (SELECT FROM ${quoteQualified(t.schema, t.table)})`).join(' UNION ALL '),
  );
  const holding = new Set(found.rows.map((r) => Number(r.i)));
  const result: TableFingerprint[] = [];
  for (const [i, table] of tables.entries()) {
    if (holding.has(i)) result.push(await fingerprintTable(client, table, checksumMaxRows));
    else result.push({ schema: table.schema, table: table.table, rows: 0, columns: Object.fromEntries(table.columns.map((c) => [c, 0])), keys: table.primaryKey.length > 0 ? [] : null });
  }
  return result;
}
