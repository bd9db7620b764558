import type pg from 'pg';
import type { AppliedMigration } from '../core/plan.js';
import { quoteIdent } from '../core/sql/quote.js';
import type { LockHolder } from './advisory-lock.js';
import { tenantLockKey } from './advisory-lock.js';

const CHUNK = 400;

/**
 * The history of many tenant schemas of one database, in a few queries: which
 * schemas have a history table, then their rows, a chunk of schemas per query.
 * Schemas without a history table are absent from the result.
 */
export async function readHistories(client: pg.ClientBase, schemas: readonly string[]): Promise<Map<string, AppliedMigration[]>> {
  const { rows: present } = await client.query<{ nspname: string }>(
    `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'flotilla_migrations' AND n.nspname = ANY($1)`,
    [schemas],
  );
  const result = new Map<string, AppliedMigration[]>(present.map((r) => [r.nspname, []]));
  const names = [...result.keys()];
  for (let i = 0; i < names.length; i += CHUNK) {
    const chunk = names.slice(i, i + CHUNK);
    const query = chunk.map((schema, k) => `SELECT $${k + 1}::text AS schema, version, name, checksum, remaining FROM ${quoteIdent(schema)}.flotilla_migrations`).join('\nUNION ALL\n');
    for (const row of (await client.query<{ schema: string; version: string; name: string; checksum: string; remaining: number[] }>(query, chunk)).rows) {
      result.get(row.schema)!.push({ version: row.version, name: row.name, checksum: row.checksum, remaining: row.remaining });
    }
  }
  return result;
}

/** Every tenant lock held in this database, by tenant schema: one query for all of them. */
export async function lockHolders(client: pg.ClientBase, schemas: readonly string[]): Promise<Map<string, LockHolder>> {
  const { rows } = await client.query<{ objid: string; pid: number; application_name: string; since: string | null }>(
    `SELECT l.objid::text AS objid, a.pid, a.application_name, to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS') AS since
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = $1::int::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.pid <> pg_backend_pid()`,
    [0x464c4f54],
  );
  const byKey = new Map(rows.map((r) => [Number(r.objid), { pid: r.pid, application: r.application_name, since: r.since }]));
  const result = new Map<string, LockHolder>();
  for (const schema of schemas) {
    // pg_locks shows the key as an unsigned oid.
    const key = tenantLockKey(schema) >>> 0;
    const holder = byKey.get(key);
    if (holder) result.set(schema, holder);
  }
  return result;
}
