import { symlink, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { runCli } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/** Bad input from the command line ends in a clear error with its own exit code, and nothing runs. */
let project: TestProject;
let flotilla: Flotilla;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const history = () => flotilla.tenants.withClient('acme', async (c) => (await c.query('SELECT version FROM flotilla_migrations ORDER BY version')).rows.map((r) => r.version));

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_a.sql': 'CREATE TABLE a (id int);' });
  flotilla = await Flotilla.open({ config: project.config });
  await flotilla.tenants.create({ slug: 'acme' });
  await project.write({ '0002_b.sql': 'CREATE TABLE b (id int);', '0003_c.sql': 'CREATE TABLE c (id int);' });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('flags validated before anything runs', () => {
  it('migrate --to a version no migration has is refused; nothing is applied', async () => {
    const result = await cli('migrate', '--all', '--to', '9999');
    expect([result.code, result.stderr]).toEqual([9, expect.stringContaining('error FLO_VERSION_NOT_FOUND: No migration has version 9999 (the newest is 0003)')]);
    expect(await history()).toEqual(['0001']);
    expect((await flotilla.rollouts.list()).length).toBe(0);
    await expect(flotilla.upgrade.migrate({ all: true, target: '9999' })).rejects.toMatchObject({ code: 'FLO_VERSION_NOT_FOUND' });
    expect(await history()).toEqual(['0001']);
  });

  it('migrate --to that is not a version is a usage error', async () => {
    const result = await cli('migrate', '--all', '--to', '1; drop');
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('error FLO_USAGE: --to "1; drop" is not a migration version')]);
    expect(await history()).toEqual(['0001']);
  });

  it.each([
    [['audit', '--limit', 'abc'], '--limit "abc" is not a whole number from 1 to 100000'],
    [['audit', '--limit', '0'], '--limit "0" is not at least 1'],
    [['audit', '--since', '99999999999w'], '--since "99999999999w" is not a duration of at most a hundred years'],
    [['audit', '--since', '20261121'], '--since "20261121" is not a date'],
    [['audit', '--tenant', 'a;drop'], 'error FLO_SLUG_INVALID'],
    [['migrate', '--all', '--concurrency', '1e3'], '--concurrency "1e3" is not a whole number from 1 to 1000'],
    [['migrate', '--all', '--wave-size', '-1'], '--wave-size "-1" is not a whole number'],
    [['migrate', '--all', '--max-failures', 'many'], '--max-failures "many" is not a count (3) or a share (5%)'],
    [['migrate', '--tenant', 'Acme'], 'error FLO_SLUG_INVALID'],
    [['migrate', '--all', '--canary', 'acme,../x'], 'error FLO_SLUG_INVALID'],
    [['migrate', '--resume', "x' OR 1=1"], '--resume "x\' OR 1=1" is not an id'],
    [['rollout', 'show', '%'], 'rollout id "%" is not an id'],
    [['restore', 'acme', '--backup', '%'], '--backup "%" is not an id'],
    [['backup', 'acme', '--keep', '2.5'], '--keep "2.5" is not a whole number'],
    [['tenant', 'create', 'ok', '--tag', 'a b'], '--tag "a b" is not a tag'],
  ])('%j is refused: %s', async (args, message) => {
    const result = await cli(...args);
    expect(result.stderr).toContain(message);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toContain('unexpected');
  });

  it('a migration that is a symbolic link to a file outside the directory is refused by migrate; nothing runs', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'flotilla-outside-'));
    await writeFile(join(outside, 'evil.sql'), 'DROP TABLE a;');
    await symlink(join(outside, 'evil.sql'), join(project.migrationsDir, '0004_evil.sql'));
    const result = await cli('migrate', '--all');
    expect([result.code, result.stderr]).toEqual([4, expect.stringContaining('error FLO_MIGRATION_FILE_INVALID: 0004_evil.sql in the migrations directory is a symbolic link')]);
    expect(await history()).toEqual(['0001']);
    await rm(join(project.migrationsDir, '0004_evil.sql'));
    await rm(outside, { recursive: true, force: true });
  });
});
