import type pg from 'pg';
import type { AffectedRelations, TableComparison, TableFingerprint } from '../core/verification.js';
import { quoteIdent, quoteQualified } from '../core/sql/quote.js';

export interface TableInfo {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
  /** Each column's type, as `format_type` writes it. */
  readonly types: readonly string[];
  /** Columns declared NOT NULL: their values number the rows, so they need no counting of their own. */
  readonly notNull: readonly string[];
  readonly primaryKey: readonly string[];
  /** Tables whose deleted rows take this one's with them, or change it (foreign keys ON DELETE CASCADE / SET NULL / SET DEFAULT). */
  readonly cascadesFrom: readonly string[];
}

/** The columns, their types, NOT NULL columns and primary key of the table whose oid is `c.oid`, as SQL select items. */
const COLUMN_INFO = `ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS types,
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull) AS not_null,
       (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum))
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
       ARRAY(SELECT DISTINCT p.relname::text FROM pg_constraint k JOIN pg_class p ON p.oid = k.confrelid
              WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confdeltype IN ('c', 'n', 'd')) AS cascades_from`;

interface ColumnInfoRow {
  columns: string[] | null;
  types: string[] | null;
  not_null: string[] | null;
  pk: string[] | null;
  cascades_from: string[] | null;
}

/** User schemas of the tenant: the given ones, or (null) every schema of a database tenant's database. */
const TENANT_SCHEMA = `(n.nspname = ANY($1) OR $1 IS NULL AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')`;

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
        WHERE ${TENANT_SCHEMA}
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'flotilla_migrations'),
     chosen AS (
       SELECT oid FROM tables WHERE $2 OR "table" = ANY($3)
       -- A partition named by a statement is watched through its partitioned table.
       UNION
       SELECT pg_partition_root(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${TENANT_SCHEMA} AND c.relispartition AND c.relname = ANY($3)
       UNION
       SELECT k.conrelid FROM pg_constraint k JOIN chosen ch ON k.confrelid = ch.oid WHERE k.contype = 'f')
     SELECT c.schema, c.table, ${COLUMN_INFO}
       FROM tables c WHERE c.oid IN (SELECT oid FROM chosen)
      ORDER BY 1, 2`,
    [schemas, affected.all, [...affected.names]],
  );
  return rows.map((r) => ({ schema: r.schema, table: r.table, ...tableColumns(r) }));
}

/**
 * Triggers and rules already in the tenant's database on the given tables (or
 * on tables their foreign keys cascade to): they fire during the plan's own
 * statements and may change any table, so their presence makes the plan's
 * effect unbounded. Described as `trigger <name> on <table>`.
 */
export async function effectsThroughExistingObjects(client: pg.ClientBase, schemas: readonly string[] | null, tables: readonly string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const { rows } = await client.query<{ what: string }>(
    `WITH RECURSIVE named AS (
       SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${TENANT_SCHEMA} AND c.relname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
       UNION
       SELECT k.conrelid FROM pg_constraint k JOIN named ON k.confrelid = named.oid WHERE k.contype = 'f')
     SELECT 'trigger ' || t.tgname || ' on ' || c.relname AS what FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE t.tgrelid IN (SELECT oid FROM named) AND NOT t.tgisinternal
     UNION ALL
     SELECT 'rule ' || r.rulename || ' on ' || c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
      WHERE r.ev_class IN (SELECT oid FROM named) AND r.rulename <> '_RETURN'
     UNION ALL
     -- Functions of the tenant's own that run when rows are written or read: in a default, a check, an
     -- index expression, or a view's query (a view named by a statement, or a materialized view refreshed).
     SELECT 'function ' || p.proname || ' in ' || CASE d.classid WHEN 'pg_attrdef'::regclass THEN 'a default' WHEN 'pg_constraint'::regclass THEN 'a constraint' WHEN 'pg_rewrite'::regclass THEN 'a view' ELSE 'an index' END
       FROM pg_depend d JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
      WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        AND ((d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid IN (SELECT oid FROM named)))
          OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid IN (SELECT oid FROM named)))
          OR (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM named)))
          OR (d.classid = 'pg_rewrite'::regclass AND d.objid IN (SELECT oid FROM pg_rewrite WHERE ev_class IN (SELECT oid FROM named) AND rulename = '_RETURN')))
     ORDER BY 1`,
    [schemas, [...tables]],
  );
  return rows.map((r) => r.what);
}

function tableColumns(row: ColumnInfoRow): Pick<TableInfo, 'columns' | 'types' | 'notNull' | 'primaryKey' | 'cascadesFrom'> {
  return { columns: row.columns ?? [], types: row.types ?? [], notNull: row.not_null ?? [], primaryKey: row.pk ?? [], cascadesFrom: row.cascades_from ?? [] };
}

/** The same table after statements ran, by its new name when renamed; undefined when it is gone. */
export async function tableNow(client: pg.ClientBase, schema: string, name: string): Promise<TableInfo | undefined> {
  const { rows } = await client.query<ColumnInfoRow>(
    `SELECT ${COLUMN_INFO} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  return rows[0] ? { schema, table: name, ...tableColumns(rows[0]) } : undefined;
}

/** One scan: the row count and each nullable column's non-NULL count. */
export async function countTable(client: pg.ClientBase, table: TableInfo): Promise<TableFingerprint> {
  const notNull = new Set(table.notNull);
  const counts = table.columns.flatMap((column, i) => (notNull.has(column) ? [] : [`count(${quoteIdent(column)}) AS c${i}`]));
  const { rows } = await client.query(`SELECT count(*) AS rows${counts.length ? `, ${counts.join(', ')}` : ''} FROM ${quoteQualified(table.schema, table.table)}`);
  const row = rows[0] as Record<string, string>;
  const total = Number(row.rows);
  const columns = Object.fromEntries(table.columns.map((column, i) => [column, notNull.has(column) ? total : Number(row[`c${i}`])]));
  return { schema: table.schema, table: table.table, rows: total, columns };
}

/** Which of the tables hold any row: one query reading at most one row of each. */
export async function tablesHoldingRows(client: pg.ClientBase, tables: readonly TableInfo[]): Promise<Set<number>> {
  if (tables.length === 0) return new Set();
  const found = await client.query<{ i: number }>(tables.map((t, i) => `SELECT ${i} AS i WHERE EXISTS (SELECT FROM ${quoteQualified(t.schema, t.table)})`).join(' UNION ALL '));
  return new Set(found.rows.map((r) => Number(r.i)));
}

let hashedTables = 0;

/**
 * A copy, in a temporary table of this session, of one hash per row (its key,
 * or its whole content when it has none) and one per column value: what a later
 * comparison matches rows and values against, without the data leaving the server.
 */
export async function hashTable(client: pg.ClientBase, table: TableInfo): Promise<string> {
  const name = `flotilla_verify_${process.pid}_${++hashedTables}`;
  const exprs = table.columns.map(quoteIdent);
  await client.query(`CREATE TEMPORARY TABLE ${name} AS SELECT ${rowHashes(table, table.primaryKey.map(quoteIdent), exprs)} FROM ${quoteQualified(table.schema, table.table)}`);
  return name;
}

/** `k` (the key's or the whole row's hash) and `v0…vn` (each value's), for the given expressions of the columns. */
function rowHashes(_table: TableInfo, keyExprs: readonly string[], exprs: readonly string[]): string {
  const key = keyExprs.length > 0 ? keyExprs : exprs;
  const values = exprs.map((e, i) => `pg_catalog.hashtextextended(ROW(${e})::text, 0) AS v${i}`);
  return [`pg_catalog.hashtextextended(ROW(${key.join(', ')})::text, 0) AS k`, ...values].join(', ');
}

/**
 * Compares a table with its hashed copy of an earlier moment: rows no longer
 * there, and (matched by key) values changed per column. `now` is the table as it
 * is (renamed, columns renamed); columns gone, or whose type changed (checked
 * before the change ran), are not compared value by value.
 */
export async function compareWithHashed(
  client: pg.ClientBase,
  hashed: string,
  before: TableInfo,
  now: TableInfo,
  columnRenames: ReadonlyMap<string, string>,
): Promise<Pick<TableComparison, 'missingRows' | 'changedColumns' | 'changedRows' | 'keyed'>> {
  const present = (column: string, i: number) => {
    const name = columnRenames.get(column) ?? column;
    const at = now.columns.indexOf(name);
    return at !== -1 && now.types[at] === before.types[i] ? quoteIdent(name) : undefined;
  };
  const exprs = before.columns.map((c, i) => present(c, i) ?? 'NULL');
  const keyExprs = before.primaryKey.map((c) => present(c, before.columns.indexOf(c)));
  const source = quoteQualified(now.schema, now.table);
  const kept = exprs.map((e, i) => (e === 'NULL' ? undefined : i)).filter((i): i is number => i !== undefined);
  // Without its key, rows are matched by their whole content (a multiset) over the columns still comparable.
  if (before.primaryKey.length === 0 || keyExprs.some((e) => e === undefined)) {
    if (kept.length === 0) return { missingRows: null, changedColumns: null, changedRows: 0, keyed: false };
    const { rows } = await client.query<{ missing: string }>(
      `WITH b AS (SELECT pg_catalog.hashtextextended(ROW(${kept.map((i) => `v${i}`).join(', ')})::text, 0) AS k, count(*) AS n FROM ${hashed} GROUP BY 1),
            a AS (SELECT pg_catalog.hashtextextended(ROW(${kept.map((i) => `pg_catalog.hashtextextended(ROW(${exprs[i]})::text, 0)`).join(', ')})::text, 0) AS k, count(*) AS n FROM ${source} GROUP BY 1)
       SELECT coalesce(sum(greatest(b.n - coalesce(a.n, 0), 0)), 0) AS missing FROM b LEFT JOIN a USING (k)`,
    );
    return { missingRows: Number(rows[0]!.missing), changedColumns: null, changedRows: 0, keyed: false };
  }
  const compared = kept;
  const changed = compared.map((i) => `count(*) FILTER (WHERE a.k IS NOT NULL AND a.v${i} IS DISTINCT FROM b.v${i}) AS c${i}`);
  const anyChanged = compared.length > 0 ? compared.map((i) => `a.v${i} IS DISTINCT FROM b.v${i}`).join(' OR ') : 'false';
  const { rows } = await client.query<Record<string, string>>(
    `SELECT count(*) FILTER (WHERE a.k IS NULL) AS missing, count(*) FILTER (WHERE a.k IS NOT NULL AND (${anyChanged})) AS changed${changed.length ? `, ${changed.join(', ')}` : ''}
       FROM ${hashed} b LEFT JOIN (SELECT ${rowHashes(before, keyExprs as string[], exprs)} FROM ${source}) a ON a.k = b.k`,
  );
  const row = rows[0]!;
  return {
    missingRows: Number(row.missing),
    changedColumns: Object.fromEntries(compared.map((i) => [before.columns[i]!, Number(row[`c${i}`])])),
    changedRows: Number(row.changed),
    keyed: true,
  };
}

export async function dropHashed(client: pg.ClientBase, hashed: string): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${hashed}`);
}

/**
 * The database's large objects, hashed page by page when this session may read
 * them (a superuser), by their ids alone otherwise, in a temporary table.
 */
export async function hashLargeObjects(client: pg.ClientBase): Promise<{ table: string; count: number; contents: boolean }> {
  const name = `flotilla_verify_${process.pid}_${++hashedTables}`;
  const { rows } = await client.query<{ readable: boolean }>(`SELECT has_table_privilege('pg_catalog.pg_largeobject', 'SELECT') AS readable`);
  const contents = rows[0]!.readable;
  await client.query(`CREATE TEMPORARY TABLE ${name} AS SELECT m.oid AS o, ${contents ? LARGE_OBJECT_HASH : 'NULL::bigint'} AS h FROM pg_largeobject_metadata m`);
  const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`);
  return { table: name, count: Number(count.rows[0]!.n), contents };
}

const LARGE_OBJECT_HASH = `(SELECT hashtextextended(coalesce(string_agg(md5(p.data), '' ORDER BY p.pageno), ''), 0) FROM pg_largeobject p WHERE p.loid = m.oid)`;

/** Large objects of the earlier moment that are gone or whose contents changed. */
export async function compareLargeObjects(client: pg.ClientBase, hashed: { table: string; contents: boolean }): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${hashed.table} b LEFT JOIN pg_largeobject_metadata m ON m.oid = b.o
      WHERE m.oid IS NULL${hashed.contents ? ` OR b.h IS DISTINCT FROM ${LARGE_OBJECT_HASH}` : ''}`,
  );
  return Number(rows[0]!.n);
}
