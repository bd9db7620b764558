import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backup } from '../../src/control/backup-catalog.js';
import { Flotilla } from '../../src/flotilla.js';
import { runCli } from '../support/cli.js';
import { contents } from '../support/contents.js';
import { startCli, until } from '../support/kill.js';
import { expectClean, holdLock, sessions, waitingOnLock } from '../support/interrupt.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * `restore` and `restore --as` killed with SIGKILL at three moments each (the
 * worst: with the tenant's own database moved aside and the copy not yet in
 * its place), then run again: the restore completes, nothing is left aside,
 * and no other tenant changes.
 */
let project: TestProject;
let flotilla: Flotilla;
let backup: Backup;
let schemaBackup: Backup;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const start = (...args: string[]) => startCli(args, { cwd: project.dir, env: project.env });
const control = () => `${project.prefix}_control`;
const db = (slug: string) => `${project.prefix}_${slug}`;
const rows = async (slug: string) => flotilla.tenants.withClient(slug, async (c) => Number((await c.query('SELECT count(*) AS n FROM readings')).rows[0].n));
const pgRestoreRunning = () => until(async () => (await sessions(`application_name = 'pg_restore' AND state = 'active'`)) > 0, 'pg_restore running');

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_readings.sql': 'CREATE TABLE readings (id bigint PRIMARY KEY, note text NOT NULL);' });
  flotilla = await Flotilla.open({ config: project.config });
  await flotilla.tenants.create({ slug: 'big' });
  await flotilla.tenants.create({ slug: 'calm' });
  await flotilla.tenants.create({ slug: 'sch', kind: 'schema' });
  // Big enough that pg_restore runs for a while, so that it can be seen running and killed.
  await project.query(db('big'), `INSERT INTO readings SELECT i, repeat('reading ', 12) || i FROM generate_series(1, 300000) i`);
  await project.query(db('calm'), `INSERT INTO readings SELECT i, 'r' || i FROM generate_series(1, 50) i`);
  await flotilla.tenants.withClient('sch', (c) => c.query(`INSERT INTO readings SELECT i, 'r' || i FROM generate_series(1, 70) i`));
  backup = await flotilla.backups.create('big');
  schemaBackup = await flotilla.backups.create('sch');
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('restore into the tenant, killed and run again', () => {
  let calm: Record<string, string>;
  beforeAll(async () => {
    calm = await contents([db('calm')]);
  });
  const damage = () => project.query(db('big'), 'DELETE FROM readings WHERE id > 1000');

  it('killed while pg_restore fills the copy: the tenant is back as it was; run again, it is restored', async () => {
    await damage();
    const victim = start('restore', 'big', '--backup', backup.id);
    await pgRestoreRunning();
    await victim.kill();
    expect((await flotilla.tenants.get('big')).status).toBe('restoring');
    // Any next command clears it: the copy goes, the tenant is back online as it was.
    expect((await cli('backup', 'calm')).code).toBe(0);
    expect((await flotilla.tenants.get('big')).status).toBe('active');
    expect(await rows('big')).toBe(1000);
    const again = await cli('restore', 'big', '--backup', backup.id);
    expect(again.code).toBe(0);
    expect(await rows('big')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
  });

  it('killed with its database moved aside and the copy not yet in place: the next command puts the tenant back; run again, it is restored', async () => {
    await damage();
    const victim = start('restore', 'big', '--backup', backup.id);
    await pgRestoreRunning();
    // The restore records each step on its operation: holding that row stops it between its two renames.
    const step = await holdLock(control(), `SELECT 1 FROM flotilla.operations WHERE command = 'restore' AND finished_at IS NULL FOR NO KEY UPDATE`);
    await waitingOnLock('UPDATE flotilla.operations SET phase%', 'the restore between its renames');
    await victim.kill({ withSessions: true });
    await step.release();
    // Right now the tenant has no database under its name: the next command, whatever it is, puts it back.
    expect(await project.query('postgres', 'SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [db('big')])).toEqual([{ n: 0 }]);
    expect((await cli('backup', 'calm')).code).toBe(0);
    expect(await rows('big')).toBe(1000);
    expect((await flotilla.tenants.get('big')).status).toBe('active');
    const again = await cli('restore', 'big', '--backup', backup.id);
    expect(again.code).toBe(0);
    expect(await rows('big')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
  });

  it('killed with the copy in place, before the old database was let go: the next run keeps the copy', async () => {
    await damage();
    const victim = start('restore', 'big', '--backup', backup.id);
    await until(async () => (await project.query(control(), `SELECT 1 FROM flotilla.storage WHERE purpose = 'aside'`)).length > 0, 'the old database claimed aside');
    const aside = await holdLock(control(), `SELECT 1 FROM flotilla.storage WHERE purpose = 'aside' FOR UPDATE`);
    await waitingOnLock('DELETE FROM flotilla.storage%', 'the restore letting go of the old database');
    await victim.kill({ withSessions: true });
    await aside.release();
    // The copy was verified and in place: the next command keeps it and lets the old database go.
    expect((await cli('backup', 'calm')).code).toBe(0);
    expect(await rows('big')).toBe(300000);
    expect((await flotilla.tenants.get('big')).status).toBe('active');
    const again = await cli('restore', 'big', '--backup', backup.id);
    expect(again.code).toBe(0);
    expect(await rows('big')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
    expect(await contents([db('calm')])).toEqual(calm);
  });

  it('a schema tenant killed with its schemas moved aside: the next command puts them back', async () => {
    const schema = db('sch');
    await flotilla.tenants.withClient('sch', (c) => c.query('DELETE FROM readings WHERE id > 10'));
    // Claims wait first (the operation row is written by then), then the operation row is held: the
    // restore stops right after it moved the schemas aside, when it records that it did.
    const claims = await holdLock(control(), 'LOCK TABLE flotilla.storage IN SHARE MODE');
    const victim = start('restore', 'sch', '--backup', schemaBackup.id);
    await waitingOnLock('INSERT INTO flotilla.storage%', 'the restore claiming names to move its schemas to');
    const held = await holdLock(control(), `SELECT 1 FROM flotilla.operations WHERE command = 'restore' AND finished_at IS NULL FOR NO KEY UPDATE`);
    await claims.release();
    await waitingOnLock('UPDATE flotilla.operations SET phase%', 'the restore with its schemas moved aside');
    await victim.kill({ withSessions: true });
    await held.release();
    expect(await project.query(project.config.tenants.schemaDatabase, 'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [schema])).toEqual([{ n: 0 }]);
    expect((await cli('backup', 'calm')).code).toBe(0);
    expect(await flotilla.tenants.withClient('sch', async (c) => Number((await c.query('SELECT count(*) AS n FROM readings')).rows[0].n))).toBe(10);
    expect((await cli('restore', 'sch', '--backup', schemaBackup.id)).code).toBe(0);
    expect(await flotilla.tenants.withClient('sch', async (c) => Number((await c.query('SELECT count(*) AS n FROM readings')).rows[0].n))).toBe(70);
    await expectClean(project, flotilla, 'restore');
  });
});

describe('restore --as, killed and run again', () => {
  it('killed while pg_restore fills the new tenant: the half-made tenant is removed; run again, it is made', async () => {
    const victim = start('restore', 'big', '--backup', backup.id, '--as', 'copy-a');
    await pgRestoreRunning();
    await victim.kill();
    expect((await flotilla.tenants.get('copy-a')).status).toBe('provisioning');
    const again = await cli('restore', 'big', '--backup', backup.id, '--as', 'copy-a');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(await rows('copy-a')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
  });

  it('killed just before the new tenant became active: run again, it is made', async () => {
    const victim = start('restore', 'big', '--backup', backup.id, '--as', 'copy-b');
    await until(async () => (await flotilla.tenants.list()).find((t) => t.slug === 'copy-b') !== undefined, 'the new tenant registered');
    const row = await holdLock(control(), `SELECT 1 FROM flotilla.tenants WHERE slug = 'copy-b' FOR NO KEY UPDATE`);
    await waitingOnLock(`UPDATE flotilla.tenants SET status = 'active'%`, 'the new tenant about to become active');
    await victim.kill({ withSessions: true });
    await row.release();
    const again = await cli('restore', 'big', '--backup', backup.id, '--as', 'copy-b');
    expect(again.code).toBe(0);
    expect(await rows('copy-b')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
  });

  it('killed after its work, before its end was recorded: run again, it is done', async () => {
    const victim = start('restore', 'big', '--backup', backup.id, '--as', 'copy-c');
    await until(async () => (await flotilla.tenants.list()).find((t) => t.slug === 'copy-c') !== undefined, 'the new tenant registered');
    const row = await holdLock(control(), `SELECT 1 FROM flotilla.tenants WHERE slug = 'copy-c' FOR NO KEY UPDATE`);
    await waitingOnLock(`UPDATE flotilla.tenants SET status = 'active'%`, 'the new tenant about to become active');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await row.release();
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'the restore waiting to record its end');
    await victim.kill({ withSessions: true });
    await end.release();
    const again = await cli('restore', 'big', '--backup', backup.id, '--as', 'copy-c');
    expect(again.code).toBe(0);
    expect(await rows('copy-c')).toBe(300000);
    await expectClean(project, flotilla, 'restore');
  });
});
