import type pg from 'pg';
import { quoteQualified } from '../core/sql/quote.js';
import { existingSchemas } from './provision.js';

/** Exact row counts per table, keyed relative to the tenant's schema so a copy under another name compares equal. */
export type RowCounts = Record<string, number>;

/** `tenant_acme.members` → `@.members`, `tenant_acme__events.log` → `@__events.log` (schema tenants); database tenants keep real names. */
function relativeKey(schema: string, table: string, tenantSchema: string | undefined): string {
  if (tenantSchema && (schema === tenantSchema || schema.startsWith(`${tenantSchema}__`))) return `@${schema.slice(tenantSchema.length)}.${table}`;
  return `${schema}.${table}`;
}

/** Counts every ordinary table of the schemas (for a database tenant: all user schemas). */
export async function countRows(client: pg.Client, options: { schemas?: readonly string[]; tenantSchema?: string }): Promise<RowCounts> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND ($1::text[] IS NULL AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' OR n.nspname = ANY($1))
      ORDER BY 1, 2`,
    [options.schemas ?? null],
  );
  const counts: RowCounts = {};
  for (const { schema, table } of rows) {
    const result = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(schema, table)}`);
    counts[relativeKey(schema, table, options.tenantSchema)] = Number(result.rows[0]!.n);
  }
  return counts;
}

/** Tables whose counts differ: `members: 20 recorded, 19 restored`. */
export function countDifferences(recorded: RowCounts, restored: RowCounts): string[] {
  const keys = [...new Set([...Object.keys(recorded), ...Object.keys(restored)])].sort();
  return keys.filter((k) => recorded[k] !== restored[k]).map((k) => `${k}: ${recorded[k] ?? 'absent'} recorded, ${restored[k] ?? 'absent'} restored`);
}

/** Counts a tenant's tables as its backups count them: a whole database, or those of its schemas that exist. */
export async function countScopeRows(client: pg.Client, scope: { schemas?: readonly string[]; tenantSchema?: string }): Promise<RowCounts> {
  return countRows(client, scope.schemas ? { schemas: await existingSchemas(client, scope.schemas), tenantSchema: scope.tenantSchema } : {});
}

/** Tables with fewer rows after than before, or gone: `claims: 800 rows before, 799 after` (more rows is no loss). */
export function countLosses(before: RowCounts, after: RowCounts): string[] {
  return Object.entries(before).flatMap(([table, n]) =>
    after[table] === undefined ? [`${table}: ${n} rows before, table gone after`] : after[table]! < n ? [`${table}: ${n} rows before, ${after[table]} after`] : [],
  );
}

export function totalRows(counts: RowCounts): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
