import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { events, runCli } from '../support/cli.js';
import { contents } from '../support/contents.js';
import { startCli, until } from '../support/kill.js';
import { expectClean, holdLock, waitingOnLock } from '../support/interrupt.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * `migrate`, `migrate --resume`, `rollout cancel` and `server add` killed with
 * SIGKILL at chosen moments, then run again: they finish, no tenant stays
 * `upgrading`, and the audit trail shows the interrupted attempt.
 */
let project: TestProject;
let flotilla: Flotilla;
let next = 2;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const start = (...args: string[]) => startCli(args, { cwd: project.dir, env: project.env });
const control = () => `${project.prefix}_control`;
const db = (slug: string) => `${project.prefix}_${slug}`;
const FLEET = ['t1', 't2', 't3'];

/** A new migration for the fleet, which waits on advisory lock 4343 (held by the test in a tenant to stop it there). */
async function newMigration(): Promise<string> {
  const version = String(next++).padStart(4, '0');
  await project.write({ [`${version}_step.sql`]: `SELECT pg_advisory_xact_lock(4343);\nINSERT INTO log VALUES ('${version}');` });
  return version;
}

async function versions(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const slug of FLEET) result[slug] = (await project.query(db(slug), 'SELECT v FROM log ORDER BY v')).map((r) => r.v as string);
  return result;
}

async function expectFleetAt(version: string): Promise<void> {
  for (const [slug, applied] of Object.entries(await versions())) {
    expect(applied.at(-1), slug).toBe(version);
    // Applied exactly once: it ran in the tenant's transaction with its history row.
    expect(
      applied.filter((v) => v === version),
      slug,
    ).toHaveLength(1);
  }
  expect((await flotilla.tenants.list()).filter((t) => t.status !== 'active')).toEqual([]);
}

/** An unfinished rollout: its runner killed with t1 in its transaction. */
async function unfinished(): Promise<{ id: string; version: string }> {
  const version = await newMigration();
  const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
  const victim = start('migrate', '--tag', 'fleet', '--json');
  await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade in its transaction");
  const id = events(victim.output())[0]!.rollout as string;
  await victim.kill({ withSessions: true });
  await gate.release();
  return { id, version };
}

let calmBefore: Record<string, string>;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_log.sql': 'CREATE TABLE log (v text NOT NULL);' });
  flotilla = await Flotilla.open({ config: project.config });
  for (const slug of FLEET) await flotilla.tenants.create({ slug, tags: ['fleet'] });
  await flotilla.tenants.create({ slug: 'calm' });
  await project.query(db('calm'), `INSERT INTO log SELECT 'calm' || i FROM generate_series(1, 20) i`);
  calmBefore = await contents([db('calm')]);
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('migrate, killed and run again as it was', () => {
  it('killed right after its rollout was made: run again, it resumes that rollout', async () => {
    const version = await newMigration();
    const victim = start('migrate', '--tag', 'fleet', '--json');
    await until(() => victim.output().includes('"rollout.started"'), 'the rollout made');
    await victim.kill();
    const again = await cli('migrate', '--tag', 'fleet', '--json');
    expect(again.code).toBe(0);
    expect(events(again.stdout).some((e) => e.event === 'rollout.resumed')).toBe(true);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'migrate');
  });

  it("killed in the middle of a tenant's transaction: that tenant is not left upgrading, and the run again finishes it", async () => {
    const version = await newMigration();
    const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
    const victim = start('migrate', '--tag', 'fleet', '--json');
    await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade in its transaction");
    expect((await flotilla.tenants.get('t1')).status).toBe('upgrading');
    await victim.kill({ withSessions: true });
    await gate.release();
    const again = await cli('migrate', '--tag', 'fleet', '--json');
    expect(again.code).toBe(0);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'migrate');
  });

  it("killed after a tenant's upgrade committed, before it was recorded: rechecked, not applied twice", async () => {
    const version = await newMigration();
    const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
    const victim = start('migrate', '--tag', 'fleet', '--json', '--concurrency', '1');
    await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade in its transaction");
    const record = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await gate.release();
    await waitingOnLock('INSERT INTO flotilla.audit_events%', "t1's upgrade being recorded");
    await victim.kill({ withSessions: true });
    await record.release();
    expect((await versions()).t1!.at(-1)).toBe(version);
    const again = await cli('migrate', '--tag', 'fleet', '--json');
    expect(again.code).toBe(0);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'migrate');
  });
});

describe('migrate --resume, killed and run again', () => {
  it('killed as it resumes: resumed again, it finishes', async () => {
    const { id, version } = await unfinished();
    const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
    const victim = start('migrate', '--resume', id, '--json');
    await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade resumed");
    await victim.kill({ withSessions: true });
    await gate.release();
    expect((await cli('migrate', '--resume', id, '--json')).code).toBe(0);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'rollout resume');
  });

  it('killed before its end was recorded: resumed again, it has nothing left to do', async () => {
    const { id, version } = await unfinished();
    const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
    const victim = start('migrate', '--resume', id, '--json');
    await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade resumed");
    await gate.release();
    await until(async () => (await flotilla.rollouts.get(id)).status === 'finished', 'the rollout finished');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'the resume recording its end');
    await victim.kill({ withSessions: true });
    await end.release();
    expect((await cli('migrate', '--resume', id, '--json')).code).toBe(0);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'rollout resume');
  });
});

describe('rollout cancel', () => {
  it('after a killed runner left its tenant upgrading: cancelled, and the tenant is active again', async () => {
    const version = await newMigration();
    const gate = await holdLock(db('t1'), 'SELECT pg_advisory_lock(4343)');
    const victim = start('migrate', '--tag', 'fleet', '--json', '--concurrency', '1');
    await waitingOnLock('SELECT pg_advisory_xact_lock(4343)%', "t1's upgrade in its transaction");
    const id = events(victim.output())[0]!.rollout as string;
    await victim.kill({ withSessions: true });
    await gate.release();
    expect((await flotilla.tenants.get('t1')).status).toBe('upgrading');
    const cancelled = await cli('rollout', 'cancel', id);
    expect(cancelled.code).toBe(0);
    expect((await flotilla.rollouts.get(id)).status).toBe('cancelled');
    expect((await flotilla.tenants.list()).filter((t) => t.status !== 'active')).toEqual([]);
    // Finished by a new rollout, for the next tests.
    expect((await cli('migrate', '--tag', 'fleet', '--json')).code).toBe(0);
    await expectFleetAt(version);
    await expectClean(project, flotilla, 'migrate');
  });

  it('killed before it cancelled: run again, it cancels', async () => {
    const { id } = await unfinished();
    const row = await holdLock(control(), 'SELECT 1 FROM flotilla.rollouts WHERE id = $1 FOR NO KEY UPDATE', [id]);
    const victim = start('rollout', 'cancel', id);
    await waitingOnLock('UPDATE flotilla.rollouts SET status%', 'the cancel');
    await victim.kill({ withSessions: true });
    await row.release();
    expect((await flotilla.rollouts.get(id)).status).toBe('running');
    expect((await cli('rollout', 'cancel', id)).code).toBe(0);
    expect((await flotilla.rollouts.get(id)).status).toBe('cancelled');
    await expectClean(project, flotilla, 'rollout cancel');
  });

  it('killed before its end was recorded: run again, it is cancelled all the same', async () => {
    const latest = await unfinished();
    const work = await holdLock(control(), 'SELECT 1 FROM flotilla.rollouts WHERE id = $1 FOR NO KEY UPDATE', [latest.id]);
    const victim = start('rollout', 'cancel', latest.id);
    await waitingOnLock('UPDATE flotilla.rollouts SET status%', 'the cancel');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await work.release();
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'the cancel recording its end');
    await victim.kill({ withSessions: true });
    await end.release();
    expect((await flotilla.rollouts.get(latest.id)).status).toBe('cancelled');
    expect((await cli('rollout', 'cancel', latest.id)).code).toBe(0);
    await expectClean(project, flotilla, 'rollout cancel');
  });
});

describe('server add, killed and run again', () => {
  const url = () => project.env.FLOTILLA_DATABASE_URL!;

  it('killed before the server was registered: run again, it is registered', async () => {
    const lock = await holdLock(control(), 'LOCK TABLE flotilla.servers IN SHARE MODE');
    const victim = start('server', 'add', 'second', '--url', url());
    await waitingOnLock('INSERT INTO flotilla.servers%', 'server add');
    await victim.kill({ withSessions: true });
    await lock.release();
    expect((await flotilla.servers.list()).map((s) => s.name)).toEqual(['main']);
    expect((await cli('server', 'add', 'second', '--url', url())).code).toBe(0);
    expect((await flotilla.servers.list()).map((s) => s.name)).toEqual(['main', 'second']);
    await expectClean(project, flotilla, 'server add');
  });

  it('killed before its end was recorded: run again, it is done', async () => {
    const lock = await holdLock(control(), 'LOCK TABLE flotilla.servers IN SHARE MODE');
    const victim = start('server', 'add', 'third', '--url', url());
    await waitingOnLock('INSERT INTO flotilla.servers%', 'server add');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await lock.release();
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'server add recording its end');
    await victim.kill({ withSessions: true });
    await end.release();
    expect((await cli('server', 'add', 'third', '--url', url())).code).toBe(0);
    await expectClean(project, flotilla, 'server add');
    // The tenant outside every selection never changed.
    expect(await contents([db('calm')])).toEqual(calmBefore);
  });
});
