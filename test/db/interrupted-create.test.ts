import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { runCli } from '../support/cli.js';
import { contents, databasesWith } from '../support/contents.js';
import { startCli, until } from '../support/kill.js';
import { expectClean, holdLock, sessions, waitingOnLock } from '../support/interrupt.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * `tenant create` killed with SIGKILL at three moments (and a schema tenant's
 * mid-migration), then run again: the tenant is made, nothing half-made is left,
 * no other tenant changes, and the audit trail shows the interrupted attempt.
 */
let project: TestProject;
let flotilla: Flotilla;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const start = (...args: string[]) => startCli(args, { cwd: project.dir, env: project.env });
const control = () => `${project.prefix}_control`;
const others = async () =>
  contents(
    (await databasesWith(project.prefix)).filter((d) => d.endsWith('_keep') || d.endsWith('_schemas')),
    { skipSchemas: (_, schema) => !schema.endsWith('_keeps') },
  );

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_notes.sql': "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);\nINSERT INTO notes (body) VALUES ('welcome');",
    // Waits on an advisory lock the test may hold (in the shared database of schema tenants).
    '0002_gate.sql': 'SELECT pg_advisory_xact_lock(4242);',
    // Long enough to be seen running, and killed during.
    '0003_pause.sql': 'SELECT pg_sleep(0.4);',
  });
  flotilla = await Flotilla.open({ config: project.config });
  await flotilla.tenants.create({ slug: 'keep' });
  await flotilla.tenants.create({ slug: 'keeps', kind: 'schema' });
  for (const slug of ['keep', 'keeps']) await flotilla.tenants.withClient(slug, (c) => c.query(`INSERT INTO notes (body) SELECT 'n' || i FROM generate_series(1, 20) i`));
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

async function expectMade(slug: string): Promise<void> {
  expect(await flotilla.tenants.get(slug)).toMatchObject({ status: 'active' });
  expect(await flotilla.tenants.withClient(slug, async (c) => (await c.query('SELECT body FROM notes')).rows)).toEqual([{ body: 'welcome' }]);
}

describe('tenant create, killed and run again', () => {
  let before: Record<string, string>;
  beforeAll(async () => {
    before = await others();
  });

  it('killed once registered, before its database is claimed: run again, it makes the tenant', async () => {
    const lock = await holdLock(control(), 'LOCK TABLE flotilla.storage IN SHARE MODE');
    const victim = start('tenant', 'create', 'one');
    await waitingOnLock('INSERT INTO flotilla.storage%', 'create waiting to claim its database');
    await victim.kill();
    await lock.release();
    expect((await flotilla.tenants.get('one')).status).toBe('provisioning');
    const again = await cli('tenant', 'create', 'one');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    await expectMade('one');
    await expectClean(project, flotilla, 'tenant create');
  });

  it('killed while its migrations run (in the shared database of schema tenants): run again, it makes the tenant', async () => {
    const gate = await holdLock(project.config.tenants.schemaDatabase, 'SELECT pg_advisory_lock(4242)');
    const victim = start('tenant', 'create', 'two', '--kind', 'schema');
    await waitingOnLock('%pg_advisory_xact_lock(4242)%', 'create waiting in its migration');
    await victim.kill();
    await gate.release();
    const again = await cli('tenant', 'create', 'two', '--kind', 'schema');
    expect(again.code).toBe(0);
    await expectMade('two');
    await expectClean(project, flotilla, 'tenant create');
  });

  it('killed while its migrations run (a database tenant): run again, it makes the tenant', async () => {
    const victim = start('tenant', 'create', 'three');
    await until(async () => (await sessions(`datname = $1 AND query = 'SELECT pg_sleep(0.4)' AND state = 'active'`, [`${project.prefix}_three`])) > 0, 'the migration running');
    await victim.kill();
    const again = await cli('tenant', 'create', 'three');
    expect(again.code).toBe(0);
    await expectMade('three');
    await expectClean(project, flotilla, 'tenant create');
  });

  it('killed after its work, before its end was recorded: run again, it is done', async () => {
    const work = await holdLock(control(), 'LOCK TABLE flotilla.storage IN SHARE MODE');
    const victim = start('tenant', 'create', 'four');
    await waitingOnLock('INSERT INTO flotilla.storage%', 'create waiting to claim its database');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await work.release();
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'create waiting to record its end');
    // Its machine gone with it: the statement it was waiting on dies too (a process alone killed would
    // leave PostgreSQL to finish that statement, and the end would be recorded after all).
    await victim.kill({ withSessions: true });
    await end.release();
    const again = await cli('tenant', 'create', 'four', '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ slug: 'four', status: 'active' });
    await expectMade('four');
    await expectClean(project, flotilla, 'tenant create');
    // A create of a tenant that exists, not after an interrupted one, is still refused.
    expect((await cli('tenant', 'create', 'keep')).code).toBe(9);
    expect(await others()).toEqual(before);
  });

  it('a create whose liveness session alone broke is not taken for dead by other commands; it stops itself and undoes what it made', async () => {
    const gate = await holdLock(project.config.tenants.schemaDatabase, 'SELECT pg_advisory_lock(4242)');
    const victim = start('tenant', 'create', 'five', '--kind', 'schema');
    await waitingOnLock('%pg_advisory_xact_lock(4242)%', 'create waiting in its migration');
    // Its liveness session ends (a network blip, an administrator's pg_terminate_backend); the process lives on.
    await project.query('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'flotilla runner %:' || $1 || ':%'`, [
      String(victim.child.pid),
    ]);
    await until(async () => (await sessions(`application_name LIKE 'flotilla runner %:' || $1 || ':%'`, [String(victim.child.pid)])) === 0, 'its liveness session gone');
    // Another command clears what dead commands left: not this one, whose other sessions are still connected.
    expect((await cli('backup', 'keep')).code).toBe(0);
    expect((await flotilla.tenants.get('five')).status).toBe('provisioning');
    await gate.release();
    // It notices before it goes on, stops, and undoes what it made.
    expect(await victim.exited).toBe(6);
    expect(victim.output()).toContain('that shows this tenant create is alive broke');
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'five')).toBeUndefined();
    expect(await project.query(control(), `SELECT command FROM flotilla.operations WHERE finished_at IS NULL`)).toEqual([]);
    expect(await project.query(control(), `SELECT name FROM flotilla.storage WHERE purpose IN ('scratch', 'aside') OR name LIKE '%_five'`)).toEqual([]);
  });

  it('a command that fails (not killed) leaves nothing either', async () => {
    await project.write({ '0004_fails.sql': 'SELECT 1/0;' });
    const failed = await cli('tenant', 'create', 'six');
    expect(failed.code).toBe(6);
    expect(failed.stderr).toContain('FLO_PROVISION_FAILED');
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'six')).toBeUndefined();
    expect(await project.query(control(), `SELECT name FROM flotilla.storage WHERE name LIKE '%_six'`)).toEqual([]);
    expect(await databasesWith(`${project.prefix}_six`)).toEqual([]);
    const events = (await flotilla.audit.list({ tenant: 'six' })).map((e) => e.outcome);
    expect(events).toEqual(['started', 'failed']);
    await project.write({ '0004_fails.sql': 'SELECT 1;' });
  });

  it('one interrupted command that cannot be cleared now does not stop the others', async () => {
    // A dead command whose scratch database is on a server that is not registered any more.
    const [op] = await project.query(
      control(),
      `INSERT INTO flotilla.operations (command, arguments, actor, runner_key, owner) VALUES ('backup', '{}', 'someone', 424242, 'gone:1') RETURNING id`,
    );
    await project.query(control(), `INSERT INTO flotilla.storage (server, kind, name, purpose, operation_id) VALUES ('gone', 'database', 'flotilla_snap_gone', 'scratch', $1)`, [
      op!.id,
    ]);
    expect((await cli('backup', 'keep')).code).toBe(0);
    const cleared = (await flotilla.audit.list({ limit: 100_000 })).filter((e) => e.operationId === op!.id);
    expect(cleared.map((e) => e.outcome)).toEqual(['failed']);
    expect(cleared[0]!.errorMessage).toContain('tried again by the next command');
    // Tried again (and again refused) by the next command, which runs all the same.
    expect((await cli('backup', 'keep')).code).toBe(0);
    await project.query(control(), `DELETE FROM flotilla.storage WHERE operation_id = $1`, [op!.id]);
    await project.query(control(), `UPDATE flotilla.operations SET finished_at = now(), outcome = 'interrupted' WHERE id = $1`, [op!.id]);
  });
});
