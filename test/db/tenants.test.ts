import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { databasesLike, testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_orgs.sql': 'CREATE TABLE orgs (id serial PRIMARY KEY, name text NOT NULL);',
    '0002_events.sql': 'CREATE SCHEMA IF NOT EXISTS events;\nCREATE TABLE events.log (id serial PRIMARY KEY, org int);\nCREATE INDEX ON "public"."orgs" (name);',
  });
  flotilla = await Flotilla.open({ config: project.config });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('tenants', () => {
  it('creates a database tenant: its own database, every migration applied, registered active', async () => {
    const tenant = await flotilla.tenants.create({ slug: 'acme-paris', name: 'Acme Paris', plan: 'pro' });
    expect(tenant).toMatchObject({
      slug: 'acme-paris',
      name: 'Acme Paris',
      kind: 'database',
      status: 'active',
      server: 'main',
      database: `${project.prefix}_acme_paris`,
      schema: 'public',
      plan: 'pro',
    });
    const tables = await project.query(tenant.database, `SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('public', 'events') ORDER BY 1, 2`);
    expect(tables).toEqual([
      { table_schema: 'events', table_name: 'log' },
      { table_schema: 'public', table_name: 'flotilla_migrations' },
      { table_schema: 'public', table_name: 'orgs' },
    ]);
    const history = await project.query(
      tenant.database,
      "SELECT version, name, remaining, duration_ms >= 0 AS timed, applied_by <> '' AS who FROM flotilla_migrations ORDER BY version",
    );
    expect(history).toEqual([
      { version: '0001', name: 'orgs', remaining: [], timed: true, who: true },
      { version: '0002', name: 'events', remaining: [], timed: true, who: true },
    ]);
  });

  it('creates a schema tenant whose schemas are all its own, in the shared database', async () => {
    const tenant = await flotilla.tenants.create({ slug: 'globex', kind: 'schema' });
    expect(tenant).toMatchObject({ kind: 'schema', database: `${project.prefix}_schemas`, schema: `${project.prefix}_globex` });
    const tables = await project.query(
      tenant.database,
      `SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
    );
    expect(tables).toEqual([
      { table_schema: `${project.prefix}_globex`, table_name: 'flotilla_migrations' },
      { table_schema: `${project.prefix}_globex`, table_name: 'orgs' },
      { table_schema: `${project.prefix}_globex__events`, table_name: 'log' },
    ]);
  });

  it('lists, shows and reports status of every tenant', async () => {
    expect((await flotilla.tenants.list()).map((t) => t.slug)).toEqual(['acme-paris', 'globex']);
    expect((await flotilla.tenants.get('globex')).kind).toBe('schema');
    await expect(flotilla.tenants.get('nobody')).rejects.toMatchObject({ code: 'FLO_TENANT_NOT_FOUND' });
    const status = await flotilla.status.fleet();
    expect(status.map((s) => [s.slug, s.version, s.applied, s.pending, s.problems])).toEqual([
      ['acme-paris', '0002', 2, 0, []],
      ['globex', '0002', 2, 0, []],
    ]);
  });

  it('migrates nothing when every tenant is up to date', async () => {
    const report = await flotilla.upgrade.migrate({ all: true });
    expect(report.outcomes.map((o) => o.status)).toEqual(['skipped', 'skipped']);
  });

  it.each(['database', 'schema'] as const)('removes a half-made %s tenant and does not register it when a migration fails', async (kind) => {
    await project.write({ '0003_broken.sql': 'CREATE TABLE ok (id int);\nSELECT 1/0;' });
    try {
      const slug = `broken-${kind}`;
      const error = await flotilla.tenants.create({ slug, kind }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'FLO_PROVISION_FAILED', meta: { cause: 'FLO_MIGRATION_FAILED', file: '0003_broken.sql', line: 2 } });
      expect((error as Error).message).toContain('division by zero');
      await expect(flotilla.tenants.get(slug)).rejects.toMatchObject({ code: 'FLO_TENANT_NOT_FOUND' });
      expect(await databasesLike(`${project.prefix}_broken`)).toEqual([]);
      const schemas = await project.query(`${project.prefix}_schemas`, `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`, [`${project.prefix}_broken%`]);
      expect(schemas).toEqual([]);
    } finally {
      await import('node:fs/promises').then((fs) => fs.rm(`${project.migrationsDir}/0003_broken.sql`));
    }
  });

  it.each(['Paris', 'a;drop', 'x', 'a'.repeat(60)])('refuses the slug %j before any SQL runs', async (slug) => {
    await expect(flotilla.tenants.create({ slug })).rejects.toMatchObject({ code: 'FLO_SLUG_INVALID' });
    expect((await flotilla.tenants.list()).length).toBe(2);
  });

  it('refuses a slug already taken', async () => {
    await expect(flotilla.tenants.create({ slug: 'globex' })).rejects.toMatchObject({ code: 'FLO_TENANT_EXISTS' });
  });

  it('registers another server after checking it answers, and refuses one that does not', async () => {
    const server = await flotilla.servers.add('second', project.env.FLOTILLA_DATABASE_URL!);
    expect(server.name).toBe('second');
    await expect(flotilla.servers.add('dead', 'postgres://postgres@127.0.0.1:1/postgres')).rejects.toMatchObject({ code: 'FLO_CONNECTION_FAILED' });
    await expect(flotilla.servers.add('bad-url', 'not a url')).rejects.toMatchObject({ code: 'FLO_URL_INVALID' });
    expect((await flotilla.servers.list()).map((s) => s.name)).toEqual(['main', 'second']);
    const placed = await flotilla.tenants.create({ slug: 'on-second', server: 'second' });
    expect(placed.server).toBe('second');
  });
});

describe('a baseline written by pg_dump, on schema tenants', () => {
  it("gives each schema tenant its own sequence behind nextval('public.…'::regclass)", async () => {
    await project.write({
      '0003_ledger.sql': `CREATE SEQUENCE public.ledger_id_seq;
CREATE TABLE public.ledger (id integer NOT NULL, note text);
ALTER TABLE ONLY public.ledger ALTER COLUMN id SET DEFAULT nextval('public.ledger_id_seq'::regclass);
SELECT setval('public.ledger_id_seq', 100, false);`,
    });
    const report = await flotilla.upgrade.migrate({ tenants: ['globex'] });
    expect(report.outcomes[0]!.status).toBe('succeeded');
    await flotilla.tenants.create({ slug: 'initech', kind: 'schema' });
    for (const slug of ['globex', 'initech']) {
      const ids = await flotilla.tenants.withClient(slug, async (c) => (await c.query("INSERT INTO ledger (note) VALUES ('a'), ('b') RETURNING id")).rows.map((r) => r.id));
      expect(ids).toEqual([100, 101]);
    }
    // Nothing landed in public of the shared database.
    const tenant = await flotilla.tenants.get('globex');
    expect(await project.query(tenant.database, `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'ledger%'`)).toEqual([]);
  });
});
