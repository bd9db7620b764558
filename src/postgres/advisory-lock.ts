import type pg from 'pg';
import { sha256 } from '../core/checksum.js';
import { FlotillaError } from '../core/errors.js';

import { LOCK_NAMESPACES } from './lock-namespaces.js';

const NAMESPACE = LOCK_NAMESPACES.tenant;

/** Advisory locks are per database, so the schema name is enough to tell tenants apart. */
export function tenantLockKey(schema: string): number {
  return Buffer.from(sha256(schema), 'hex').readInt32BE(0);
}

export interface LockHolder {
  pid: number;
  application: string;
  since: string | null;
}

/**
 * Holds the tenant's two-key advisory lock on this session while `fn` runs.
 * Waits up to `waitMs`, then fails naming the session that holds it.
 */
export async function withTenantLock<T>(client: pg.ClientBase, options: { schema: string; tenant: string; waitMs: number; lockTimeout: string }, fn: () => Promise<T>): Promise<T> {
  const key = tenantLockKey(options.schema);
  // Uncontended, the lock is taken at once; the waiting path (with a timeout) only when another session holds it.
  const { rows } = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock($1, $2) AS locked, set_config('lock_timeout', $3, false)`, [
    NAMESPACE,
    key,
    options.lockTimeout,
  ]);
  if (!rows[0]?.locked) await waitForLock(client, key, options);
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [NAMESPACE, key]).catch(() => undefined);
  }
}

async function waitForLock(client: pg.ClientBase, key: number, options: { schema: string; tenant: string; waitMs: number; lockTimeout: string }): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${Math.max(1, options.waitMs)}ms`]);
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [NAMESPACE, key]);
  } catch (cause) {
    if ((cause as { code?: string }).code !== '55P03') throw cause;
    const holder = await lockHolder(client, options.schema);
    throw new FlotillaError(
      'FLO_TENANT_LOCKED',
      `Tenant ${options.tenant} is locked by ${holder ? `session ${holder.pid} (${holder.application || 'unknown application'}${holder.since ? `, since ${holder.since}` : ''})` : 'another session'}; waited ${options.waitMs} ms.`,
      {
        hint: 'Another migration of this tenant is running: wait for it to finish and run the command again, or raise lockWaitMs.',
        meta: { tenant: options.tenant, pid: holder?.pid ?? null, application: holder?.application ?? null },
        cause,
      },
    );
  } finally {
    // On a session that died meanwhile this fails too: the error that ended the wait is the one to report.
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [options.lockTimeout]).catch(() => undefined);
  }
}

/** The session holding a tenant's lock, if any (other than this one). */
export async function lockHolder(client: pg.ClientBase, schema: string): Promise<LockHolder | undefined> {
  return (await lockHolders(client, [schema])).get(schema);
}

/** Every tenant lock held in this database by another session, by tenant schema: one query for all of them. */
export async function lockHolders(client: pg.ClientBase, schemas: readonly string[]): Promise<Map<string, LockHolder>> {
  const { rows } = await client.query<{ objid: string; pid: number; application_name: string; since: string | null }>(
    `SELECT l.objid::text AS objid, a.pid, a.application_name, to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS') AS since
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = $1::int::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.pid <> pg_backend_pid()`,
    [NAMESPACE],
  );
  const byKey = new Map(rows.map((r) => [Number(r.objid), { pid: r.pid, application: r.application_name, since: r.since }]));
  const result = new Map<string, LockHolder>();
  for (const schema of schemas) {
    // pg_locks shows the key as an unsigned oid.
    const holder = byKey.get(tenantLockKey(schema) >>> 0);
    if (holder) result.set(schema, holder);
  }
  return result;
}
