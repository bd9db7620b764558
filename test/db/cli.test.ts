import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events, runCli, tenantResults } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { databasesLike, testProject } from '../support/project.js';

let project: TestProject;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_notes.sql': 'CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);' });
  expect((await cli('migration', 'hash')).code).toBe(0);
});
afterAll(() => project?.cleanup());

describe('the flotilla CLI', () => {
  it.each([
    [[]],
    [['init']],
    [['migration', 'new']],
    [['migration', 'hash']],
    [['tenant', 'create']],
    [['tenant', 'list']],
    [['tenant', 'show']],
    [['status']],
    [['migrate']],
    [['server', 'add']],
    [['server', 'list']],
    [['demo']],
  ])('explains %j with --help', async (args) => {
    const result = await cli(...args, '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: flotilla');
  });

  it('creates, lists and shows tenants, with --json', async () => {
    const created = await cli('tenant', 'create', 'acme', '--name', 'Acme Corp', '--json');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ slug: 'acme', name: 'Acme Corp', kind: 'database', status: 'active' });
    expect((await cli('tenant', 'create', 'globex', '--kind', 'schema')).stdout).toContain('Created tenant globex (schema');
    const list = JSON.parse((await cli('tenant', 'list', '--json')).stdout);
    expect(list.map((t: { slug: string }) => t.slug)).toEqual(['acme', 'globex']);
    const show = await cli('tenant', 'show', 'globex', '--json');
    expect(JSON.parse(show.stdout)).toMatchObject({ slug: 'globex', schema: `${project.prefix}_globex` });
    const table = await cli('tenant', 'list');
    expect(table.stdout).toMatch(/acme .*Acme Corp .*database .*active/);
  });

  it('shows status, plans with --dry-run, then migrates every tenant', async () => {
    const made = await cli('migration', 'new', 'add_title', '--json');
    expect(made.code).toBe(0);
    const { file } = JSON.parse(made.stdout) as { file: string };
    expect(file).toMatch(/migrations\/\d{14}_add_title\.sql$/);
    await writeFile(file, `${await readFile(file, 'utf8')}ALTER TABLE notes ADD COLUMN title text;\n`);
    const stale = await cli('status');
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain('error FLO_SUM_MISMATCH');
    expect(stale.stderr).toContain('flotilla migration hash');
    expect((await cli('migration', 'hash')).code).toBe(0);

    const status = JSON.parse((await cli('status', '--json')).stdout);
    expect(status.map((s: { slug: string; pending: number }) => [s.slug, s.pending])).toEqual([
      ['acme', 1],
      ['globex', 1],
    ]);
    const dry = await cli('migrate', '--all', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    // Grouped: acme (database) and globex (schema) get the same plan here.
    expect(JSON.parse(dry.stdout)).toEqual([expect.objectContaining({ count: 2, tenants: ['acme', 'globex'], status: 'planned', from: '0001' })]);
    expect(JSON.parse((await cli('status', '--json')).stdout)[0].pending).toBe(1);
    // --to holds in a dry run too: up to 0001, there is nothing to apply.
    const held = await cli('migrate', '--all', '--dry-run', '--to', '0001', '--json');
    expect(JSON.parse(held.stdout)).toEqual([expect.objectContaining({ count: 2, status: 'skipped', from: '0001', migrations: [] })]);

    const run = await cli('migrate', '--all');
    expect(run.code).toBe(0);
    expect(tenantResults(run.stdout)).toEqual({ acme: 'succeeded', globex: 'succeeded' });
    expect(events(run.stdout).find((e) => e.event === 'tenant.succeeded')).toMatchObject({ from: '0001', migrations: 1 });
    const after = await cli('status');
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/acme .*database .*active .*\d{14} .*2 .*0/);
  });

  it('refuses a migration changed after it was applied, with exit code and code', async () => {
    const files = (await readdir(project.migrationsDir)).filter((f) => f.endsWith('_add_title.sql'));
    const path = join(project.migrationsDir, files[0]!);
    const original = await readFile(path, 'utf8');
    await writeFile(path, `${original}-- changed\n`);
    await cli('migration', 'hash');
    try {
      const result = await cli('migrate', '--tenant', 'acme', '--json');
      expect(result.code).toBe(6);
      expect(tenantResults(result.stdout)).toEqual({ acme: 'failed:FLO_CHECKSUM_CHANGED' });
      const status = await cli('status');
      expect(status.code).toBe(1);
      expect(status.stdout).toContain('FLO_CHECKSUM_CHANGED');
    } finally {
      await writeFile(path, original);
      await cli('migration', 'hash');
    }
  });

  it('refuses an applied migration deleted from disk, naming it, and applies nothing', async () => {
    const path = join(project.migrationsDir, '0001_notes.sql');
    const original = await readFile(path, 'utf8');
    await import('node:fs/promises').then((fs) => fs.rm(path));
    try {
      const unhashed = await cli('migrate', '--all');
      expect(unhashed.code).toBe(4);
      expect(unhashed.stderr).toContain('error FLO_SUM_MISMATCH');
      expect(unhashed.stderr).toContain('recorded but missing: 0001_notes.sql');
      await cli('migration', 'hash');
      const result = await cli('migrate', '--all', '--json');
      expect(result.code).toBe(6);
      expect(tenantResults(result.stdout)).toEqual({ acme: 'failed:FLO_MIGRATION_MISSING', globex: 'failed:FLO_MIGRATION_MISSING' });
      expect(events(result.stdout).find((e) => e.event === 'tenant.failed')!.message).toContain('0001_notes');
    } finally {
      await writeFile(path, original);
      await cli('migration', 'hash');
    }
  });

  it.each(['Paris', 'a;drop', 'x', 'a'.repeat(60)])('refuses the slug %j: exit 2, a message, nothing created', async (slug) => {
    const result = await cli('tenant', 'create', slug);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error FLO_SLUG_INVALID');
    expect(result.stderr).toContain('what to do:');
    expect(JSON.parse((await cli('tenant', 'list', '--json')).stdout)).toHaveLength(2);
    expect(await databasesLike(`${project.prefix}_${slug.slice(0, 5).toLowerCase().replace(/\W/g, '')}`)).toEqual([]);
  });

  it('refuses a config with an unknown key before connecting anywhere', async () => {
    const fresh = await testProject();
    try {
      await writeFile(join(fresh.dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', databseUrl: 'postgres://x@localhost/y' }));
      const result = await runCli(['tenant', 'create', 'acme'], { cwd: fresh.dir, env: fresh.env });
      expect(result.code).toBe(3);
      expect(result.stderr).toContain('error FLO_CONFIG_INVALID');
      expect(result.stderr).toContain('"databseUrl"');
      expect(await databasesLike(fresh.prefix)).toEqual([]);
    } finally {
      await fresh.cleanup();
    }
  });

  it('refuses a bad database URL before connecting anywhere', async () => {
    const result = await runCli(['tenant', 'list'], { cwd: project.dir, env: { ...project.env, FLOTILLA_DATABASE_URL: 'localhost:5432/flotilla' } });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('error FLO_URL_INVALID');
    expect(result.stderr).toContain('for example postgres://postgres@127.0.0.1:5432/flotilla');
  });

  it('asks which tenants to migrate', async () => {
    const result = await cli('migrate');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error FLO_USAGE');
  });

  it('refuses an unknown --status or --order, naming the choices, before any rollout is made', async () => {
    const rollouts = async () => JSON.parse((await cli('rollout', 'list', '--json')).stdout).length as number;
    const before = await rollouts();
    const status = await cli('migrate', '--all', '--status', 'activ');
    expect(status.code).toBe(2);
    expect(status.stderr).toContain("option '--status <status>' argument 'activ' is invalid. Allowed choices are provisioning, active, suspended, archived, restoring, upgrading.");
    const order = await cli('migrate', '--all', '--order', 'biggest');
    expect(order.code).toBe(2);
    expect(order.stderr).toContain("argument 'biggest' is invalid. Allowed choices are slug, plan, created, size.");
    expect(await rollouts()).toBe(before);
  });

  it('registers servers and never prints their passwords', async () => {
    const url = new URL(project.env.FLOTILLA_DATABASE_URL!);
    // A server with trust authentication accepts any password; otherwise the URL already has the real one.
    if (!url.password) url.password = 'sekret-pw';
    const added = await cli('server', 'add', 'second', '--url', url.toString());
    expect(added.code).toBe(0);
    const list = await cli('server', 'list', '--json');
    expect(list.stdout).not.toContain(url.password);
    const listed = JSON.parse(list.stdout) as { name: string; url: string }[];
    expect(listed.map((s) => s.name)).toEqual(['main', 'second']);
    // Shown without any password at all: the registry keeps it apart from the URL.
    expect(listed[1]!.url).toBe(`postgres://${url.username}@${url.host}${url.pathname}`);
    // Added again with the same URL (say, after the first was killed): done already, not an error.
    expect((await cli('server', 'add', 'second', '--url', url.toString())).code).toBe(0);
  });

  it('writes a config and an empty migrations directory with flotilla init, once', async () => {
    const fresh = await testProject();
    try {
      await import('node:fs/promises').then((fs) => fs.rm(join(fresh.dir, 'flotilla.config.json')));
      const first = await runCli(['init', '--migrations-dir', 'db/migrations'], { cwd: fresh.dir, env: fresh.env });
      expect(first.code).toBe(0);
      expect(JSON.parse(await readFile(join(fresh.dir, 'flotilla.config.json'), 'utf8'))).toEqual({ migrationsDir: 'db/migrations' });
      expect(await readdir(join(fresh.dir, 'db/migrations'))).toEqual(['flotilla.sum']);
      const second = await runCli(['init'], { cwd: fresh.dir, env: fresh.env });
      expect(second.code).toBe(3);
      expect(second.stderr).toContain('error FLO_CONFIG_EXISTS');
    } finally {
      await fresh.cleanup();
    }
  });
});
