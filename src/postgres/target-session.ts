import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';

// The engine's session, in PostgreSQL's terms: its settings, its transactions, and the statements it sends.

/** Settings of an upgrade's session: its timeout, its name, and pg_catalog alone on the path for Flotilla's own queries. */
export async function prepareSession(client: pg.ClientBase, settings: { statementTimeout: string; applicationName: string }): Promise<void> {
  await client.query(
    `SELECT pg_catalog.set_config('statement_timeout', $1, false), pg_catalog.set_config('application_name', $2, false), pg_catalog.set_config('search_path', 'pg_catalog', false)`,
    [settings.statementTimeout, settings.applicationName],
  );
}

export async function createSchemaIfMissing(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
}

/** Runs `work` in a transaction whose unqualified names reach `schema`; rolled back on any error. */
export async function inSchemaTransaction<T>(client: pg.ClientBase, schema: string, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('search_path', $1, true)`, [quoteIdent(schema)]);
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The session's unqualified names reach `schema` (for statements outside a transaction). */
export async function useSchema(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(schema)]);
}

/** Sends one statement of a migration as it is. */
export async function runSql(client: pg.ClientBase, sql: string): Promise<void> {
  await client.query(sql);
}

/** Sends one statement under SET ROLE, then resets the role. */
export async function runSqlAs(client: pg.ClientBase, role: string, sql: string): Promise<void> {
  await client.query(`SET ROLE ${quoteIdent(role)}`);
  try {
    await client.query(sql);
  } finally {
    await client.query('RESET ROLE').catch(() => undefined);
  }
}

/** The rows a query returns. */
export async function queryRows(client: pg.ClientBase, sql: string): Promise<Record<string, unknown>[]> {
  return (await client.query(sql)).rows;
}

/**
 * Runs Flotilla's own queries with `search_path` set to pg_catalog alone, then
 * puts the session's back: a function the tenant made (in its schema, or in
 * pg_temp, which is never searched for functions unless named) cannot stand in
 * for a built-in one. Set for the session; a pooled session is reset on release.
 */
export function catalogPathOnly(client: pg.ClientBase): <T>(work: () => Promise<T>) => Promise<T> {
  return async (work) => {
    // Read, then set, in one round trip (a row's items are computed in order).
    const { rows } = await client.query<{ path: string }>(
      `SELECT pg_catalog.current_setting('search_path') AS path, pg_catalog.set_config('search_path', 'pg_catalog', false) AS now`,
    );
    try {
      return await work();
    } finally {
      await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [rows[0]!.path]).catch(() => undefined);
    }
  };
}
