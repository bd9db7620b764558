import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';
import type { Flotilla } from '../../src/flotilla.js';
import { withDatabase } from '../../src/postgres/server-url.js';
import { databasesWith } from './contents.js';
import { processesMentioning, until } from './kill.js';
import type { TestProject } from './project.js';
import { projectPrefixes, serverUrl } from './project.js';

/** A session of the test holding a lock (taken by `sql` in an open transaction) until released. */
export interface HeldLock {
  release(): Promise<void>;
}

export async function holdLock(database: string, sql: string, params: unknown[] = [], options: { wait?: boolean } = {}): Promise<HeldLock> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl(), database), application_name: 'test lock holder' });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('BEGIN');
  // Without waiting: a lock that queues behind the command's own (pg_dump then queues behind it).
  const taken = client.query(sql, params).catch(() => undefined);
  if (options.wait !== false) await taken;
  return {
    async release() {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** Sessions of the server matching a condition on pg_stat_activity (e.g. waiting on a lock with a given query). */
export async function sessions(where: string, params: unknown[] = []): Promise<number> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl(), 'postgres') });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (${where})`, params);
    return rows[0]!.n;
  } finally {
    await client.end();
  }
}

/**
 * Waits until some session of this test file's databases waits on a lock while
 * running a query like `like` (test files run side by side: another file's
 * session waiting on the same statement must not count).
 */
export function waitingOnLock(like: string, what: string): Promise<void> {
  const own = projectPrefixes.map((prefix) => `${prefix}%`);
  return until(async () => (await sessions(`wait_event_type = 'Lock' AND query LIKE $1 AND datname LIKE ANY ($2)`, [like, own])) > 0, what);
}

/**
 * After a killed command was run again: nothing it did is left half-done. No
 * tenant stuck in a transient status, no unfinished operation, no scratch or
 * aside storage, no database of the project's that the registry does not
 * record, no dump file the catalog does not list (and no `.partial`), no child
 * process left running; and the audit trail shows the interrupted attempt.
 */
export async function expectClean(project: TestProject, flotilla: Flotilla, command: string): Promise<void> {
  const alive = async () => (await processesMentioning(project.prefix)).filter((p) => !/^\d+: postgres:/.test(p));
  await until(async () => (await alive()).length === 0, 'no process of the killed command left').catch(async () => expect(await alive()).toEqual([]));
  const tenants = await flotilla.tenants.list();
  expect(tenants.filter((t) => ['provisioning', 'restoring', 'upgrading'].includes(t.status)).map((t) => `${t.slug}:${t.status}`)).toEqual([]);
  const control = `${project.prefix}_control`;
  const q = (sql: string) => project.query(control, sql);
  expect(await q(`SELECT command FROM flotilla.operations WHERE finished_at IS NULL`)).toEqual([]);
  expect(await q(`SELECT kind, name, purpose FROM flotilla.storage WHERE purpose IN ('scratch', 'aside')`)).toEqual([]);
  const claimed = new Set((await q(`SELECT name FROM flotilla.storage WHERE kind = 'database'`)).map((r) => r.name as string));
  expect((await databasesWith(project.prefix)).filter((d) => d !== control && !claimed.has(d))).toEqual([]);
  // Scratch databases are named after their operation: none may outlive it.
  const operations = (await q(`SELECT replace(id::text, '-', '') AS hex FROM flotilla.operations`)).map((r) => r.hex as string);
  const scratch = (await databasesWith('flotilla_')).filter((d) => operations.some((hex) => d === `flotilla_restore_${hex}` || d === `flotilla_old_${hex}`));
  expect(scratch).toEqual([]);
  const recorded = new Set((await q(`SELECT location FROM flotilla.backups WHERE strategy = 'dump'`)).map((r) => r.location as string));
  expect((await filesUnder(project.config.backup.dir)).filter((f) => !recorded.has(f))).toEqual([]);
  const events = await flotilla.audit.list({ limit: 100_000 });
  const interrupted = events.filter((e) => e.command === command && e.outcome === 'interrupted');
  expect(interrupted.length, `an interrupted ${command} on the audit trail`).toBeGreaterThan(0);
  const last = interrupted.at(-1)!;
  expect(events.some((e) => e.operationId === last.operationId && e.outcome === 'started')).toBe(true);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}
