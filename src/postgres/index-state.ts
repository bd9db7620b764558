import type pg from 'pg';
import { quoteQualified } from '../core/sql/quote.js';

/** Whether an index exists, and whether PostgreSQL marked it INVALID (a failed CONCURRENTLY build). */
export async function indexState(client: pg.ClientBase, schema: string, name: string): Promise<'missing' | 'valid' | 'invalid'> {
  const { rows } = await client.query<{ indisvalid: boolean }>(
    `SELECT i.indisvalid FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const row = rows[0];
  return row === undefined ? 'missing' : row.indisvalid ? 'valid' : 'invalid';
}

export async function dropInvalidIndex(client: pg.ClientBase, schema: string, name: string): Promise<void> {
  await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(schema, name)}`);
}
