import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { runCli } from '../support/cli.js';
import { contents } from '../support/contents.js';
import { startCli, until } from '../support/kill.js';
import { expectClean, holdLock, sessions, waitingOnLock } from '../support/interrupt.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * `backup` and `backup prune` killed with SIGKILL at three moments each, then
 * run again: they complete, nothing is left half-done, and the audit trail
 * shows the interrupted attempt. The moments are reached by holding a lock the
 * command needs next, never by sleeping.
 */
let project: TestProject;
let flotilla: Flotilla;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const start = (...args: string[]) => startCli(args, { cwd: project.dir, env: project.env });
const control = () => `${project.prefix}_control`;
const db = (slug: string) => `${project.prefix}_${slug}`;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_readings.sql': 'CREATE TABLE readings (id bigint PRIMARY KEY, note text NOT NULL);' });
  flotilla = await Flotilla.open({ config: project.config });
  for (const slug of ['big', 'small', 'calm']) await flotilla.tenants.create({ slug });
  // Big enough that pg_dump runs for a while, so that it can be seen running and killed.
  await project.query(db('big'), `INSERT INTO readings SELECT i, repeat('reading ', 12) || i FROM generate_series(1, 300000) i`);
  for (const slug of ['small', 'calm']) await project.query(db(slug), `INSERT INTO readings SELECT i, 'r' || i FROM generate_series(1, 50) i`);
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('backup, killed and run again', () => {
  let calm: Record<string, string>;
  beforeAll(async () => {
    calm = await contents([db('calm'), db('small')]);
  });

  it('killed while counting rows (a table locked by someone else): run again, it backs up', async () => {
    const lock = await holdLock(db('big'), 'LOCK TABLE readings IN ACCESS EXCLUSIVE MODE');
    const victim = start('backup', 'big');
    await waitingOnLock('SELECT count(*)%', 'the backup waiting to count rows');
    await victim.kill();
    await lock.release();
    const again = await cli('backup', 'big');
    expect(again.code).toBe(0);
    await expectClean(project, flotilla, 'backup');
  });

  it('killed while pg_dump runs: pg_dump dies with it, and its partial file is swept on the next run', async () => {
    const before = (await flotilla.backups.list('big')).length;
    const victim = start('backup', 'big');
    await until(async () => (await sessions(`application_name = 'pg_dump' AND datname = $1 AND state = 'active'`, [db('big')])) > 0, 'pg_dump running');
    await victim.kill();
    const again = await cli('backup', 'big');
    expect(again.code).toBe(0);
    expect(await flotilla.backups.list('big')).toHaveLength(before + 1);
    await expectClean(project, flotilla, 'backup');
  });

  it('killed with the dump complete but not yet in the catalog: the unrecorded file is removed', async () => {
    const before = (await flotilla.backups.list('big')).length;
    const lock = await holdLock(control(), 'LOCK TABLE flotilla.backups IN SHARE MODE');
    const victim = start('backup', 'big');
    await waitingOnLock('INSERT INTO flotilla.backups%', 'the backup waiting to record its dump');
    await victim.kill();
    await lock.release();
    expect(await flotilla.backups.list('big')).toHaveLength(before);
    const again = await cli('backup', 'big');
    expect(again.code).toBe(0);
    expect(await flotilla.backups.list('big')).toHaveLength(before + 1);
    await expectClean(project, flotilla, 'backup');
    expect(await contents([db('calm'), db('small')])).toEqual(calm);
  });
});

describe('backup prune, killed and run again', () => {
  const three = async () => {
    for (let i = (await flotilla.backups.list('small')).length; i < 3; i++) await flotilla.backups.create('small');
    return flotilla.backups.list('small');
  };

  it('killed before it removed anything: run again, it keeps the newest one', async () => {
    const backups = await three();
    const lock = await holdLock(control(), 'LOCK TABLE flotilla.backups IN SHARE MODE');
    const victim = start('backup', 'prune', 'small', '--keep', '1');
    await waitingOnLock('DELETE FROM flotilla.backups%', 'prune waiting to remove a backup');
    await victim.kill();
    await lock.release();
    expect((await flotilla.backups.list('small')).map((b) => b.id)).toEqual(backups.map((b) => b.id));
    expect((await cli('backup', 'prune', 'small', '--keep', '1')).code).toBe(0);
    expect((await flotilla.backups.list('small')).map((b) => b.id)).toEqual([backups[0]!.id]);
    await expectClean(project, flotilla, 'backup prune');
  });

  it('killed between two backups: the one removed is gone whole, the other is whole, and the next run finishes', async () => {
    const backups = await three();
    const lock = await holdLock(control(), 'SELECT 1 FROM flotilla.storage WHERE backup_id = $1 FOR UPDATE', [backups[2]!.id]);
    const victim = start('backup', 'prune', 'small', '--keep', '1');
    await waitingOnLock('UPDATE flotilla.storage%', 'prune waiting on the second backup');
    await victim.kill();
    await lock.release();
    expect((await flotilla.backups.list('small')).map((b) => b.id)).toEqual([backups[0]!.id, backups[2]!.id]);
    expect((await cli('backup', 'prune', 'small', '--keep', '1')).code).toBe(0);
    expect((await flotilla.backups.list('small')).map((b) => b.id)).toEqual([backups[0]!.id]);
    await expectClean(project, flotilla, 'backup prune');
  });

  it('killed after its work, before its end was recorded: the next command closes it as interrupted', async () => {
    const backups = await three();
    // Held first so that the work waits; the audit trail is locked meanwhile, so that the end must wait too.
    const work = await holdLock(control(), 'SELECT 1 FROM flotilla.storage WHERE backup_id = $1 FOR UPDATE', [backups[1]!.id]);
    const victim = start('backup', 'prune', 'small', '--keep', '1');
    await waitingOnLock('UPDATE flotilla.storage%', 'prune waiting on its first backup');
    const end = await holdLock(control(), 'LOCK TABLE flotilla.audit_events IN EXCLUSIVE MODE');
    await work.release();
    await waitingOnLock('WITH done AS (UPDATE flotilla.operations%', 'prune waiting to record its end');
    await victim.kill({ withSessions: true });
    await end.release();
    expect((await flotilla.backups.list('small')).map((b) => b.id)).toEqual([backups[0]!.id]);
    expect((await cli('backup', 'prune', 'small', '--keep', '1')).code).toBe(0);
    await expectClean(project, flotilla, 'backup prune');
  });
});
