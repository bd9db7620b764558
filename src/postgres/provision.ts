import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';

export async function databaseExists(client: pg.ClientBase, name: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length > 0;
}

/** Creates a database unless it exists; safe when several processes race to create it. */
export async function ensureDatabase(client: pg.ClientBase, name: string): Promise<void> {
  if (await databaseExists(client, name)) return;
  try {
    await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } catch (error) {
    // 42P04 duplicate_database, 23505 when two CREATE DATABASE race on pg_database's unique index.
    const code = (error as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw error;
  }
}

export async function createDatabase(client: pg.ClientBase, name: string, template?: string): Promise<void> {
  await client.query(`CREATE DATABASE ${quoteIdent(name)}${template ? ` TEMPLATE ${quoteIdent(template)}` : ''}`);
}

/**
 * Ends a `CREATE DATABASE` of this name still running for a process that died
 * (its server session goes on copying after its client is gone), and waits for
 * it to be gone: otherwise the database would appear after it was dropped.
 */
export async function endCreation(client: pg.ClientBase, name: string): Promise<void> {
  const statement = `CREATE DATABASE ${quoteIdent(name)}`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const { rows } = await client.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND starts_with(query, $1)`, [
      statement,
    ]);
    if (rows.length === 0) return;
    await client.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [rows.map((r) => r.pid)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Drops a database even with sessions still open on it (PostgreSQL 13+). */
export async function dropDatabase(client: pg.ClientBase, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export async function createSchema(client: pg.ClientBase, name: string): Promise<void> {
  await client.query(`CREATE SCHEMA ${quoteIdent(name)}`);
}

export async function dropSchemas(client: pg.ClientBase, names: readonly string[]): Promise<void> {
  for (const name of names) await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(name)} CASCADE`);
}

export async function schemaExists(client: pg.ClientBase, name: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [name]);
  return rows.length > 0;
}

/**
 * Whether a schema holds nothing, or Flotilla's history table: what an
 * interrupted `tenant create` leaves, as opposed to someone else's data.
 */
export async function isFlotillaStorage(client: pg.ClientBase, schema: string): Promise<boolean> {
  const { rows } = await client.query<{ history: boolean; relations: number }>(
    `SELECT bool_or(c.relname = 'flotilla_migrations') IS TRUE AS history, count(c.oid)::int AS relations
       FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname = $1`,
    [schema],
  );
  return rows[0]!.history || rows[0]!.relations === 0;
}

/** Renames a database; it must have no sessions (the caller ends them first where that is wanted). */
export async function renameDatabase(client: pg.ClientBase, from: string, to: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
}

/** Ends every other session on a database (so that it can be renamed or copied). */
export async function endSessions(client: pg.ClientBase, database: string): Promise<void> {
  await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
}

export async function renameSchema(client: pg.ClientBase, from: string, to: string): Promise<void> {
  await client.query(`ALTER SCHEMA ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
}

/** Moves the schemas that exist to their new names, all or none (one transaction). */
export async function moveSchemasAside(client: pg.ClientBase, moves: readonly { from: string; to: string }[]): Promise<void> {
  const present = new Set(
    await existingSchemas(
      client,
      moves.map((m) => m.from),
    ),
  );
  await client.query('BEGIN');
  try {
    for (const move of moves) if (present.has(move.from)) await renameSchema(client, move.from, move.to);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Drops the schemas standing under the original names and renames the ones put aside back, all or none. */
export async function putSchemasBack(client: pg.ClientBase, drop: readonly string[], moves: readonly { from: string; to: string }[]): Promise<void> {
  await client.query('BEGIN');
  try {
    await dropSchemas(client, drop);
    for (const move of moves) await renameSchema(client, move.from, move.to);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Which of these schemas exist in the session's database. */
export async function existingSchemas(client: pg.ClientBase, names: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) ORDER BY 1', [names]);
  return rows.map((r) => r.nspname);
}

/**
 * Whether a database holds nothing but what Flotilla puts in a shared database
 * of schema tenants: every schema empty or holding Flotilla's history table.
 */
export async function holdsOnlyTenantSchemas(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ foreign: number }>(
    `SELECT count(*)::int AS foreign FROM pg_namespace n
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
        AND EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'flotilla_migrations')`,
  );
  return rows[0]!.foreign === 0;
}
