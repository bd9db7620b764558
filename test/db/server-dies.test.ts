import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TenantOutcome } from '../../src/core/outcomes.js';
import type { Tenant } from '../../src/core/tenant.js';
import { Flotilla } from '../../src/flotilla.js';
import { tenantLockKey } from '../../src/postgres/advisory-lock.js';
import { connect } from '../../src/postgres/connect.js';
import { LOCK_NAMESPACES } from '../../src/postgres/lock-namespaces.js';
import type { TestProject } from '../support/project.js';
import { serverUrl, testProject } from '../support/project.js';

/**
 * A tenant's upgrade never rejects for its own failure, whatever the moment its
 * server dies: the upgrade's backend is ended with pg_terminate_backend (from
 * another session) while it waits on a lock the test holds, at each moment of
 * the engine: waiting for the tenant's lock, holding it before BEGIN, inside the
 * transaction, and between the committed transaction and an index built
 * concurrently. No mocks: a real server, real sessions (pooled ones for schema tenants).
 */

/** Errors nobody handled, anywhere in this process, while a test ran. */
const stray: unknown[] = [];
const onStray = (error: unknown) => {
  stray.push(error);
};
beforeEach(() => {
  stray.length = 0;
  process.on('unhandledRejection', onStray);
  process.on('uncaughtException', onStray);
});
afterEach(() => {
  process.off('unhandledRejection', onStray);
  process.off('uncaughtException', onStray);
});

/** What happened in this turn of the event loop and the next has had its chance to go unhandled. */
async function settled(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Polls `probe` until it returns a value, or fails after `ms`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const BASE = {
  '0001_base.sql': "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\nCREATE TABLE blocker (id int);\nINSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b');",
};

describe.each(['database', 'schema'] as const)('a %s tenant whose server dies during its upgrade', (kind) => {
  let project: TestProject;
  let flotilla: Flotilla;
  /** Watches pg_stat_activity and pg_locks, and ends backends. */
  let admin: pg.Client;
  const victim = `${kind}-victim`;
  const bystander = `${kind}-bystander`;
  let tenant: Tenant;
  let version = 1;

  beforeAll(async () => {
    project = await testProject();
    await project.write(BASE);
    flotilla = await Flotilla.open({ config: project.config });
    await flotilla.tenants.create({ slug: victim, kind });
    await flotilla.tenants.create({ slug: bystander, kind });
    tenant = await flotilla.tenants.get(victim);
    admin = await connect(serverUrl(), 'postgres', 'flotilla test admin');
  });
  afterAll(async () => {
    await admin?.end().catch(() => undefined);
    await flotilla?.close();
    await project?.cleanup();
  });

  /** A session on the victim's database, its unqualified names reaching the victim's tables, to hold locks with. */
  async function holder(): Promise<pg.Client> {
    const client = await connect(serverUrl(), tenant.database, 'flotilla test holder');
    await client.query(`SELECT set_config('search_path', $1, false)`, [`"${tenant.schema}"`]);
    return client;
  }

  /** The next migration, written to disk; each test adds one. */
  async function nextMigration(name: string, sql: string): Promise<{ version: string; id: string; file: string }> {
    version += 1;
    const v = String(version).padStart(4, '0');
    const file = `${v}_${name}.sql`;
    await project.write({ [file]: sql });
    return { version: v, id: `${v}_${name}`, file };
  }

  /**
   * The pid of the upgrade's backend (in the victim's database) waiting for a
   * lock `condition` describes (SQL over pg_locks `l` and pg_stat_activity `a`).
   */
  function waitingBackend(condition: string, params: unknown[] = []): Promise<number> {
    return waitFor(`the upgrade to wait (${condition})`, async () => {
      const { rows } = await admin.query<{ pid: number }>(
        `SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE NOT l.granted AND a.datname = $1 AND a.application_name LIKE 'flotilla migrate %'
            AND l.database = (SELECT oid FROM pg_database WHERE datname = $1) AND ${condition}`,
        [tenant.database, ...params],
      );
      return rows.length === 1 ? rows[0]!.pid : undefined;
    });
  }

  async function relationOid(client: pg.Client, name: string): Promise<number> {
    return Number((await client.query<{ oid: string }>(`SELECT to_regclass($1)::oid AS oid`, [`"${tenant.schema}".${name}`])).rows[0]!.oid);
  }

  async function terminate(pid: number): Promise<void> {
    const { rows } = await admin.query<{ ended: boolean }>('SELECT pg_terminate_backend($1) AS ended', [pid]);
    expect(rows[0]!.ended).toBe(true);
  }

  /**
   * Starts `run`, waits for the moment `blocked` finds, ends that backend, lets
   * go of the holder's locks, and returns what `run` resolved to (it must not reject).
   */
  async function killDuring<T>(run: () => Promise<T>, blocked: () => Promise<number>, before: (pid: number) => Promise<void>, hold: pg.Client): Promise<T> {
    const running = run();
    // A rejection is looked at below, never left unhandled while the test waits.
    const result = running.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    try {
      const pid = await blocked();
      await before(pid);
      await terminate(pid);
    } finally {
      await hold.query('ROLLBACK').catch(() => undefined);
      await hold.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      await hold.end().catch(() => undefined);
    }
    const settledResult = await result;
    if (!settledResult.ok) throw new Error(`The library call rejected: ${String(settledResult.error)}`, { cause: settledResult.error });
    return settledResult.value;
  }

  async function history(slug = victim): Promise<{ version: string; remaining: number[] }[]> {
    return flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT version, remaining FROM flotilla_migrations ORDER BY version`)).rows);
  }

  async function relations(): Promise<string[]> {
    return flotilla.tenants.withClient(victim, async (c) =>
      (await c.query<{ relname: string }>(`SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'i') ORDER BY 1`)).rows.map(
        (r) => r.relname,
      ),
    );
  }

  function expectConnectionFailed(outcome: TenantOutcome | undefined): asserts outcome is TenantOutcome & { status: 'failed' } {
    expect(outcome?.tenant).toBe(victim);
    expect(outcome?.status).toBe('failed');
    if (outcome?.status !== 'failed') throw new Error('not failed');
    expect(outcome.error.code).toBe('FLO_CONNECTION_FAILED');
  }

  /** The victim is brought to the newest migration by a second, undisturbed run. */
  async function secondRunCompletes(): Promise<void> {
    const again = await flotilla.upgrade.migrate({ tenants: [victim] });
    expect(again.outcomes.map((o) => [o.tenant, o.status])).toEqual([[victim, 'succeeded']]);
    expect((await history()).every((row) => row.remaining.length === 0)).toBe(true);
    expect((await history()).map((r) => r.version)).toEqual((await history(bystander)).map((r) => r.version));
    expect((await flotilla.tenants.get(victim)).status).toBe('active');
  }

  it('waiting for the tenant lock (before the lock, before BEGIN): failed with FLO_CONNECTION_FAILED, nothing kept', async () => {
    const before = await history();
    const migration = await nextMigration('while_locked', 'CREATE TABLE while_locked (id int);');
    const hold = await holder();
    // Another session holds the tenant's lock: the upgrade waits in pg_advisory_lock.
    await hold.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACES.tenant, tenantLockKey(tenant.schema)]);
    const report = await killDuring(
      () => flotilla.upgrade.migrate({ tenants: [victim, bystander] }),
      () =>
        waitingBackend(`l.locktype = 'advisory' AND l.classid = $2::int::oid AND l.objid = $3::bigint::oid AND l.objsubid = 2`, [
          LOCK_NAMESPACES.tenant,
          tenantLockKey(tenant.schema) >>> 0,
        ]),
      async () => undefined,
      hold,
    );
    await settled();
    expect(stray).toEqual([]);
    expectConnectionFailed(report.outcomes[0]);
    expect(report.outcomes[1]).toMatchObject({ tenant: bystander, status: 'succeeded' });
    expect({ failed: report.failed, succeeded: report.succeeded }).toEqual({ failed: 1, succeeded: 1 });
    expect(await history()).toEqual(before);
    expect(await relations()).not.toContain('while_locked');
    expect((await history(bystander)).at(-1)).toEqual({ version: migration.version, remaining: [] });
    expect((await flotilla.tenants.get(victim)).status).toBe('active');
    await secondRunCompletes();
    expect(await relations()).toContain('while_locked');
  });

  it('holding the tenant lock, reading its history before BEGIN: failed with FLO_CONNECTION_FAILED, nothing kept', async () => {
    const before = await history();
    await nextMigration('before_begin', 'CREATE TABLE before_begin (id int);');
    const hold = await holder();
    // The history table is locked: the upgrade holds the tenant's lock and waits to read it, before any BEGIN.
    await hold.query('BEGIN');
    await hold.query('LOCK TABLE flotilla_migrations IN ACCESS EXCLUSIVE MODE');
    const history_ = await relationOid(hold, 'flotilla_migrations');
    const report = await killDuring(
      () => flotilla.upgrade.migrate({ tenants: [victim, bystander] }),
      () => waitingBackend(`l.locktype = 'relation' AND l.relation = $2::oid AND a.backend_xid IS NULL`, [history_]),
      async (pid) => {
        // It holds the tenant's lock, and no transaction of its own is open.
        const { rows } = await admin.query(
          `SELECT 1 FROM pg_locks WHERE pid = $1 AND granted AND locktype = 'advisory' AND classid = $2::int::oid AND objid = $3::bigint::oid AND objsubid = 2`,
          [pid, LOCK_NAMESPACES.tenant, tenantLockKey(tenant.schema) >>> 0],
        );
        expect(rows).toHaveLength(1);
      },
      hold,
    );
    await settled();
    expect(stray).toEqual([]);
    expectConnectionFailed(report.outcomes[0]);
    expect(report.outcomes[1]).toMatchObject({ tenant: bystander, status: 'succeeded' });
    expect(await history()).toEqual(before);
    expect(await relations()).not.toContain('before_begin');
    await secondRunCompletes();
    expect(await relations()).toContain('before_begin');
  });

  it('mid-transaction: failed with FLO_CONNECTION_FAILED, the transaction rolled back, nothing kept', async () => {
    const before = await history();
    await nextMigration('mid_transaction', 'CREATE TABLE mid_transaction (id int);\nINSERT INTO blocker (id) VALUES (1);');
    const hold = await holder();
    // SHARE lets the verifier count the table's rows and keeps the INSERT waiting, after CREATE TABLE ran.
    await hold.query('BEGIN');
    await hold.query('LOCK TABLE blocker IN SHARE MODE');
    const blocker = await relationOid(hold, 'blocker');
    const report = await killDuring(
      () => flotilla.upgrade.migrate({ tenants: [victim, bystander] }),
      () => waitingBackend(`l.locktype = 'relation' AND l.relation = $2::oid AND a.backend_xid IS NOT NULL`, [blocker]),
      async () => undefined,
      hold,
    );
    await settled();
    expect(stray).toEqual([]);
    expectConnectionFailed(report.outcomes[0]);
    expect(report.outcomes[1]).toMatchObject({ tenant: bystander, status: 'succeeded' });
    const outcome = report.outcomes[0]!;
    if (outcome.status === 'failed') {
      expect(outcome.error.message).toContain('the connection was lost at');
      expect(outcome.error.hint).toContain('PostgreSQL rolled the open transaction back');
      expect(outcome.error.meta).not.toHaveProperty('kept');
    }
    expect(await history()).toEqual(before);
    expect(await relations()).not.toContain('mid_transaction');
    expect(await flotilla.tenants.withClient(victim, async (c) => (await c.query('SELECT count(*)::int AS n FROM blocker')).rows[0].n)).toBe(0);
    await secondRunCompletes();
    expect(await relations()).toContain('mid_transaction');
  });

  it('between phases (the transaction committed, the index build waiting): failed with FLO_CONNECTION_FAILED, the transaction kept and recorded', async () => {
    const before = await history();
    const migration = await nextMigration('between_phases', 'CREATE TABLE between_phases (id int);\nCREATE INDEX CONCURRENTLY items_name_idx ON items (name);');
    const hold = await holder();
    // The concurrent build needs SHARE UPDATE EXCLUSIVE on items: it waits there, after the first phase committed.
    await hold.query('BEGIN');
    await hold.query('LOCK TABLE items IN SHARE UPDATE EXCLUSIVE MODE');
    const items = await relationOid(hold, 'items');
    const report = await killDuring(
      () => flotilla.upgrade.migrate({ tenants: [victim, bystander] }),
      () => waitingBackend(`l.locktype = 'relation' AND l.relation = $2::oid`, [items]),
      async () => {
        // The first phase is committed and recorded: only the index build is left.
        expect((await history()).at(-1)).toEqual({ version: migration.version, remaining: [1] });
      },
      hold,
    );
    await settled();
    expect(stray).toEqual([]);
    expectConnectionFailed(report.outcomes[0]);
    expect(report.outcomes[1]).toMatchObject({ tenant: bystander, status: 'succeeded' });
    const outcome = report.outcomes[0]!;
    if (outcome.status === 'failed') {
      expect(outcome.error.message).toContain('[phase 2 of 2, outside a transaction');
      expect(outcome.error.hint).toContain(`Kept from this run, committed and recorded: the transaction of ${migration.id}.`);
      expect(outcome.error.hint).not.toContain('the tenant is as it was before it');
      expect(outcome.error.meta).toMatchObject({ tenant: victim, phase: 2 });
    }
    // Exactly the transaction was kept: its table, and a history row with the index build still to run.
    expect(await history()).toEqual([...before, { version: migration.version, remaining: [1] }]);
    expect(await relations()).toContain('between_phases');
    expect(await relations()).not.toContain('items_name_idx');
    const status = (await flotilla.status.fleet()).find((s) => s.slug === victim)!;
    expect(status.pending).toBe(1);
    await secondRunCompletes();
    expect(await relations()).toContain('items_name_idx');
  });

  it('in a rollout of two at once: the rollout resolves, the tenant is failed with its code, the other succeeds', async () => {
    const before = await history();
    await nextMigration('in_rollout', 'CREATE TABLE in_rollout (id int);\nINSERT INTO blocker (id) VALUES (2);');
    const hold = await holder();
    await hold.query('BEGIN');
    await hold.query('LOCK TABLE blocker IN SHARE MODE');
    const blocker = await relationOid(hold, 'blocker');
    const rollout = await killDuring(
      () => flotilla.rollouts.migrate({ tenants: [victim, bystander] }, { concurrency: 2 }),
      () => waitingBackend(`l.locktype = 'relation' AND l.relation = $2::oid AND a.backend_xid IS NOT NULL`, [blocker]),
      async () => undefined,
      hold,
    );
    await settled();
    expect(stray).toEqual([]);
    expect(rollout.status).toBe('finished');
    expect(rollout.counts).toMatchObject({ failed: 1, succeeded: 1 });
    const rows = await flotilla.rollouts.tenants(rollout.id);
    const victimRow = rows.find((r) => r.tenant === victim)!;
    expect(victimRow).toMatchObject({ state: 'failed', errorCode: 'FLO_CONNECTION_FAILED' });
    expect(rows.find((r) => r.tenant === bystander)).toMatchObject({ state: 'succeeded', errorCode: null });
    expect(await history()).toEqual(before);
    expect(await relations()).not.toContain('in_rollout');
    expect((await flotilla.tenants.get(victim)).status).toBe('active');
    await secondRunCompletes();
    expect(await relations()).toContain('in_rollout');
  });
});
