import type pg from 'pg';
import { withClient } from './connect.js';
import { adminDatabase } from './server-url.js';

/** Bytes of each database on one server (one query). */
export async function databaseSizes(serverUrl: string, databases: readonly string[]): Promise<Map<string, number>> {
  return withClient(serverUrl, adminDatabase(serverUrl), async (c) => {
    const { rows } = await c.query<{ datname: string; size: string }>('SELECT datname, pg_database_size(datname) AS size FROM pg_database WHERE datname = ANY($1)', [databases]);
    return new Map(rows.map((r) => [r.datname, Number(r.size)]));
  });
}

/** Bytes of the tables and materialized views of each schema of one database (one query). */
export async function schemaSizes(serverUrl: string, database: string, schemas: readonly string[]): Promise<Map<string, number>> {
  return withClient(serverUrl, database, async (c) => {
    const { rows } = await c.query<{ schema: string; size: string }>(
      `SELECT n.nspname AS schema, coalesce(sum(pg_total_relation_size(c.oid)), 0) AS size FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
        WHERE n.nspname = ANY($1) GROUP BY 1`,
      [schemas],
    );
    return new Map(rows.map((r) => [r.schema, Number(r.size)]));
  });
}

/** Bytes of the session's database. */
export async function currentDatabaseSize(client: pg.ClientBase): Promise<number> {
  return Number((await client.query<{ s: string }>('SELECT pg_database_size(current_database()) AS s')).rows[0]!.s);
}
