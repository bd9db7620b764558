import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/index.js';
import { withClient } from '../../src/postgres/connect.js';
import type { CliResult } from '../support/cli.js';
import { runCli } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { serverUrl, testProject } from '../support/project.js';

/**
 * Distinctive passwords planted in every place a URL can come from (the
 * environment, the config file, `server add`; in the user-info, with a `/` that
 * breaks URL parsing, and as `?password=`), then every command's output, error
 * and JSON, and every table of the control database, searched for them.
 */
let project: TestProject;
const outputs: { what: string; text: string }[] = [];
let user: string;
let secrets: string[];

const host = () => new URL(serverUrl()).host;
const control = () => `${project.prefix}_control`;
/** A URL for the test role: its password in the user-info (percent-encoded, so that it parses), or as a parameter. */
const urlWith = (password: string, database = control(), style: 'userinfo' | 'parameter' | 'raw' = 'userinfo') =>
  style === 'parameter'
    ? `postgres://${user}@${host()}/${database}?password=${encodeURIComponent(password)}`
    : `postgres://${user}:${style === 'raw' ? password : encodeURIComponent(password)}@${host()}/${database}`;

async function run(what: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const result = await runCli(args, { cwd: project.dir, env: { ...project.env, ...env } });
  outputs.push({ what, text: `${result.stdout}\n${result.stderr}` });
  return result;
}

function leaks(text: string): string[] {
  return secrets.filter((s) => text.includes(s) || text.includes(encodeURIComponent(s)) || text.includes(s.split('/')[1]!));
}

beforeAll(async () => {
  project = await testProject();
  user = `${project.prefix}_user`;
  // The role's password holds a "/", which makes a URL that carries it unencoded unparseable.
  const password = `Se/cret-${project.prefix}-role`;
  secrets = [password, `Se/cret-${project.prefix}-bad`, `Se/cret-${project.prefix}-down`];
  await withClient(serverUrl(), 'postgres', async (admin) => {
    await admin.query(`CREATE ROLE "${user}" LOGIN SUPERUSER PASSWORD '${password}'`);
  });
  await project.write({ '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL);' });
});
afterAll(async () => {
  await project?.cleanup();
  await withClient(serverUrl(), 'postgres', (admin) => admin.query(`DROP ROLE IF EXISTS "${user}"`)).catch(() => undefined);
});

describe('no secret leaves', () => {
  it('is found in no output, error or JSON of any command, whatever place the URL came from', async () => {
    const [password, bad, down] = secrets as [string, string, string];
    const viaEnv = { FLOTILLA_DATABASE_URL: urlWith(password) };
    const viaParameter = { FLOTILLA_DATABASE_URL: urlWith(password, control(), 'parameter') };
    // A "/" in an unencoded password: the URL does not parse; the error must not show it.
    const raw = await run('env, unparseable', ['tenant', 'list'], { FLOTILLA_DATABASE_URL: urlWith(bad, control(), 'raw') });
    expect(raw.code).toBe(3);
    expect(raw.stderr).toContain('FLO_URL_INVALID');

    expect((await run('create', ['tenant', 'create', 'acme'], viaEnv)).code).toBe(0);
    expect((await run('create schema', ['tenant', 'create', 'globex', '--kind', 'schema'], viaParameter)).code).toBe(0);
    await run('list', ['tenant', 'list', '--json'], viaEnv);
    await run('show', ['tenant', 'show', 'acme', '--json'], viaParameter);
    await run('status', ['status', '--json'], viaEnv);
    await project.write({ '0002_more.sql': 'ALTER TABLE members ADD COLUMN email text;' });
    expect((await run('migrate', ['migrate', '--all', '--json'], viaParameter)).code).toBe(0);
    expect((await run('backup', ['backup', 'acme', '--json'], viaEnv)).code).toBe(0);
    expect((await run('backup schema', ['backup', 'globex', '--json'], viaParameter)).code).toBe(0);
    await run('backups', ['backup', 'list', '--json'], viaEnv);

    // The config file.
    const config = join(project.dir, 'secret.config.json');
    await writeFile(config, JSON.stringify({ databaseUrl: urlWith(password), migrationsDir: 'migrations', tenants: project.config.tenants }));
    expect((await run('config file', ['--config', config, 'tenant', 'list'], { FLOTILLA_DATABASE_URL: '' })).code).toBe(0);
    await writeFile(config, JSON.stringify({ databaseUrl: urlWith(bad, control(), 'raw'), migrationsDir: 'migrations' }));
    expect((await run('config file, unparseable', ['--config', config, 'tenant', 'list'], { FLOTILLA_DATABASE_URL: '' })).code).toBe(3);

    // server add: valid, unparseable, as a parameter, and one that cannot connect.
    expect((await run('server add', ['server', 'add', 'second', '--url', urlWith(password)], viaEnv)).code).toBe(0);
    expect((await run('server add parameter', ['server', 'add', 'third', '--url', urlWith(password, 'postgres', 'parameter')], viaEnv)).code).toBe(0);
    expect((await run('server add unparseable', ['server', 'add', 'fourth', '--url', urlWith(bad, 'postgres', 'raw')], viaEnv)).code).toBe(3);
    const refused = await run('server add, down', ['server', 'add', 'fifth', '--url', `postgres://${user}:${encodeURIComponent(down)}@127.0.0.1:1/postgres`], viaEnv);
    expect(refused.code, refused.stdout + refused.stderr).toBe(8);
    await run('server list', ['server', 'list'], viaEnv);
    await run('server list json', ['server', 'list', '--json'], viaEnv);
    await run('audit', ['audit', '--json'], viaEnv);
    await run('audit table', ['audit'], viaEnv);

    const found = outputs.filter((o) => leaks(o.text).length > 0).map((o) => `${o.what}: ${leaks(o.text).join(', ')}`);
    expect(found).toEqual([]);
    expect(outputs.length).toBeGreaterThan(15);
    // Some forty commands, each a process of its own: minutes on a machine busy with other work.
  }, 300_000);

  it('is found in no table of the control database (passwords of added servers aside, which it keeps to connect)', async () => {
    const tables = await project.query<{ name: string }>(control(), `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'flotilla'`);
    expect(tables.length).toBeGreaterThan(8);
    const found: string[] = [];
    for (const { name } of tables) {
      const select = name === 'servers' ? 'SELECT name, url, created_at, max_concurrent_migrations FROM flotilla.servers' : `SELECT * FROM flotilla."${name}"`;
      const rows = await project.query(control(), `SELECT string_agg(t::text, E'\\n') AS text FROM (${select}) t`);
      const text = String(rows[0]!.text ?? '');
      if (leaks(text).length > 0) found.push(`${name}: ${leaks(text).join(', ')}`);
    }
    expect(found).toEqual([]);
    // Only the servers added with a password keep it, apart from their URL.
    expect(await project.query(control(), `SELECT name, password IS NOT NULL AS kept FROM flotilla.servers ORDER BY name`)).toEqual([
      { name: 'main', kept: false },
      { name: 'second', kept: true },
      { name: 'third', kept: true },
    ]);
  });

  it('is in no public member of the library: its configuration, control URL, servers, tenants or results', async () => {
    const [password] = secrets as [string];
    const flotilla = await Flotilla.open({ config: { ...project.config, databaseUrl: urlWith(password) } });
    try {
      await flotilla.servers.add('with-secret', urlWith(password, 'postgres'));
      const tenant = await flotilla.tenants.create({ slug: 'open-book' });
      const shown = JSON.stringify({
        config: flotilla.config,
        controlUrl: flotilla.controlUrl,
        servers: await flotilla.servers.list(),
        tenants: await flotilla.tenants.list(),
        tenant,
        storage: await flotilla.tenants.storage('open-book'),
        status: await flotilla.status.fleet(),
        audit: await flotilla.audit.list(),
      });
      expect(shown).toContain('open-book');
      expect(leaks(shown)).toEqual([]);
    } finally {
      await flotilla.close();
    }
  });
});
