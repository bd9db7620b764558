import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FlotillaError } from '../../src/core/errors.js';
import { Flotilla } from '../../src/flotilla.js';
import { contents, databasesWith } from '../support/contents.js';
import { activateTenantRow, claimStorage, deleteBackupRow, deleteTenantRow, insertBackupRow, insertTenantRow } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * The scenarios in which ordinary commands used to destroy another customer's
 * data: each now ends with a clear error or a correct result, and every other
 * tenant's data and every unregistered database stays byte-for-byte the same.
 */
let project: TestProject;
let flotilla: Flotilla;
const shared = () => project.config.tenants.schemaDatabase;

/** Everything on the server under this project's prefix except the control database, minus what `skip` names. */
async function everythingBut(skip: (database: string, schema: string) => boolean = () => false) {
  const databases = (await databasesWith(project.prefix)).filter((d) => d !== `${project.prefix}_control`);
  return contents(databases, { skipSchemas: skip });
}

/** What a call threw, which must be a FlotillaError (a call that succeeds fails the test). */
async function refusal(call: Promise<unknown>): Promise<FlotillaError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FlotillaError);
  return error as FlotillaError;
}

/** A second Flotilla on another config file of the project, with the project's environment (its server). */
async function openWith(configFile: string): Promise<Flotilla> {
  return Flotilla.open({ config: await loadConfig({ cwd: project.dir, file: configFile, env: project.env }) });
}

/** Runs `fn` on a second Flotilla opened on another config file, and closes it. */
async function withOther<T>(configFile: string, fn: (other: Flotilla) => Promise<T>): Promise<T> {
  const other = await openWith(configFile);
  try {
    return await fn(other);
  } finally {
    await other.close();
  }
}

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL);' });
  flotilla = await Flotilla.open({ config: { ...project.config, backup: { ...project.config.backup, dir: join(project.dir, 'backups') } } });
  await flotilla.tenants.create({ slug: 'ab', kind: 'schema' });
  await flotilla.tenants.create({ slug: 'ab-cd', kind: 'schema' });
  await flotilla.tenants.create({ slug: 'other', kind: 'database' });
  for (const slug of ['ab', 'ab-cd', 'other']) {
    await flotilla.tenants.withClient(slug, (c) => c.query(`INSERT INTO members (name) SELECT '${slug} ' || i FROM generate_series(1, 9) i`));
  }
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('tenants ab and ab--cd: one name can never be the other extended', () => {
  it('refuses the slug ab--cd before any SQL, and restores ab touching nothing of any other tenant', async () => {
    const before = await everythingBut();
    const created = await refusal(flotilla.tenants.create({ slug: 'ab--cd', kind: 'schema' }));
    expect(created.code).toBe('FLO_SLUG_INVALID');
    expect(created.family).toBe('usage');
    expect(created.message).toContain('"ab--cd"');
    expect(created.message).toContain('"--"');
    expect(created.hint).toContain('single "-"');
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'ab--cd')).toBeUndefined();
    expect(await everythingBut()).toEqual(before);

    const backup = await flotilla.backups.create('ab');
    expect(backup.schemas).toEqual([`${project.prefix}_ab`]);
    const others = await everythingBut((db, schema) => db === shared() && schema === `${project.prefix}_ab`);
    await flotilla.tenants.withClient('ab', (c) => c.query(`DELETE FROM members WHERE id > 3`));
    await flotilla.backups.restore('ab', backup.id);
    expect(await flotilla.tenants.withClient('ab', async (c) => (await c.query('SELECT count(*)::int AS n FROM members')).rows[0].n)).toBe(9);
    expect(await everythingBut((db, schema) => db === shared() && schema === `${project.prefix}_ab`)).toEqual(others);
  });

  it('a tenant whose migrations create a schema that another tenant already holds by that name is refused, and the other one is left as it was', async () => {
    // As an older Flotilla allowed: tenant "xy--events" owns schema <prefix>_xy__events, the very name tenant xy's
    // migration `CREATE SCHEMA events` would give x's own copy.
    const legacySchema = `${project.prefix}_xy__events`;
    const legacy = await insertTenantRow(flotilla, {
      slug: 'xy--events',
      name: 'legacy',
      kind: 'schema',
      server: 'main',
      database: shared(),
      schema: legacySchema,
      operationId: null,
    });
    await claimStorage(flotilla, { server: 'main', kind: 'schema', database: shared(), name: legacySchema }, { purpose: 'tenant', tenantId: legacy.id });
    await activateTenantRow(flotilla, 'xy--events');
    await project.query(
      shared(),
      `CREATE SCHEMA "${legacySchema}"; CREATE TABLE "${legacySchema}".notes (n int); INSERT INTO "${legacySchema}".notes SELECT generate_series(1, 9)`,
    );
    const before = await everythingBut();

    await project.write({ '0002_events.sql': 'CREATE SCHEMA events;\nCREATE TABLE events.log (id int);' });
    const created = await refusal(flotilla.tenants.create({ slug: 'xy', kind: 'schema' }));
    expect(created.code).toBe('FLO_STORAGE_TAKEN');
    expect(created.family).toBe('not-found');
    expect(created.message).toContain(`schema "${legacySchema}"`);
    expect(created.meta).toMatchObject({ kind: 'schema', name: legacySchema, server: 'main', database: shared() });
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'xy')).toBeUndefined();
    // The existing schema tenants cannot take that migration either: refused for each, nothing changed.
    const report = await flotilla.upgrade.migrate({ tenants: ['ab'] });
    expect(report.outcomes[0]).toMatchObject({ status: 'succeeded' });
    expect(await everythingBut((db, schema) => db === shared() && schema.startsWith(`${project.prefix}_ab`))).toEqual(
      Object.fromEntries(Object.entries(before).filter(([key]) => !key.startsWith(`${shared()}:${project.prefix}_ab`))),
    );
    expect(await project.query(shared(), `SELECT count(*)::int AS n FROM "${legacySchema}".notes`)).toEqual([{ n: 9 }]);
  });
});

describe('a database named like a tenant but registered to nobody', () => {
  it('is refused by tenant create and by restore --as, and keeps its nine rows', async () => {
    const stranger = `${project.prefix}_copy`;
    await project.query('postgres', `CREATE DATABASE "${stranger}"`);
    await project.query(stranger, 'CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 9)');
    const backup = await flotilla.backups.create('other');
    const before = await everythingBut();

    const restored = await refusal(flotilla.backups.restore('other', backup.id, { as: 'copy' }));
    expect(restored.code).toBe('FLO_STORAGE_TAKEN');
    expect(restored.family).toBe('not-found');
    expect(restored.message).toContain(`database "${stranger}"`);
    expect(restored.meta).toMatchObject({ kind: 'database', name: stranger, server: 'main' });
    const created = await refusal(flotilla.tenants.create({ slug: 'copy' }));
    expect(created.code).toBe('FLO_STORAGE_TAKEN');
    expect(created.family).toBe('not-found');
    expect(created.message).toContain(`database "${stranger}"`);
    expect(created.meta).toMatchObject({ kind: 'database', name: stranger, server: 'main' });

    expect(await everythingBut()).toEqual(before);
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'copy')).toBeUndefined();
    expect(await project.query(stranger, 'SELECT count(*)::int AS n FROM precious')).toEqual([{ n: 9 }]);
  });

  it('a snapshot restore --as is refused the same way', async () => {
    const stranger = `${project.prefix}_snapcopy`;
    await project.query('postgres', `CREATE DATABASE "${stranger}"`);
    await project.query(stranger, 'CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 9)');
    const backup = await flotilla.backups.create('other', { strategy: 'snapshot' });
    const before = await everythingBut();
    await expect(flotilla.backups.restore('other', backup.id, { as: 'snapcopy' })).rejects.toMatchObject({ code: 'FLO_STORAGE_TAKEN' });
    expect(await everythingBut()).toEqual(before);
  });
});

describe('a name prefix PostgreSQL would cut', () => {
  it('is refused in the config before anything is created', async () => {
    const config = join(project.dir, 'long.config.json');
    await writeFile(config, JSON.stringify({ migrationsDir: 'migrations', tenants: { databasePrefix: `${project.prefix}_${'x'.repeat(70)}` } }));
    const before = await databasesWith(project.prefix);
    const opened = await refusal(withOther(config, (other) => other.tenants.create({ slug: 'one' })));
    expect(opened.code).toBe('FLO_CONFIG_INVALID');
    expect(opened.family).toBe('config');
    expect(opened.message).toContain('tenants.databasePrefix: at most 40 characters');
    expect(opened.meta.problems).toEqual([expect.stringContaining('tenants.databasePrefix: at most 40 characters')]);
    expect(await databasesWith(project.prefix)).toEqual(before);
  });

  it('refuses a slug too long for the prefix, naming the longest it may be', async () => {
    const config = join(project.dir, 'prefix40.config.json');
    await writeFile(config, JSON.stringify({ migrationsDir: 'migrations', tenants: { databasePrefix: `${project.prefix}_${'p'.repeat(40 - project.prefix.length - 1)}` } }));
    const before = await databasesWith(project.prefix);
    const created = await refusal(withOther(config, (other) => other.tenants.create({ slug: 'a'.repeat(24) })));
    expect(created.code).toBe('FLO_SLUG_INVALID');
    expect(created.family).toBe('usage');
    expect(created.message).toContain('too long for the name prefix');
    expect(created.hint).toContain('at most 23 characters');
    expect(created.meta).toMatchObject({ slug: 'a'.repeat(24), maxSlugLength: 23 });
    expect(await databasesWith(project.prefix)).toEqual(before);
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'a'.repeat(24))).toBeUndefined();
  });
});

describe('what a tenant owns', () => {
  it('is listed by tenants.storage (what tenant show prints)', async () => {
    expect(await flotilla.tenants.storage('other')).toEqual([{ kind: 'database', server: 'main', database: '', name: `${project.prefix}_other` }]);
  });

  it("nothing is restored over storage the registry does not record as the tenant's", async () => {
    // A tenant whose database the registry does not record as its own (as when an older version gave two
    // tenants one name, and the other one kept the claim).
    const database = `${project.prefix}_orphan`;
    await project.query('postgres', `CREATE DATABASE "${database}"`);
    await project.query(database, 'CREATE TABLE members (id int); INSERT INTO members SELECT generate_series(1, 9)');
    const orphan = await insertTenantRow(flotilla, { slug: 'orphan', name: 'orphan', kind: 'database', server: 'main', database, schema: 'public', operationId: null });
    await activateTenantRow(flotilla, 'orphan');
    const backup = await flotilla.backups.create('other');
    const forged = await insertBackupRow(flotilla, { ...backup, id: '00000000-0000-4000-8000-000000000001', tenant: 'orphan' });
    const before = await everythingBut();
    const restored = await refusal(flotilla.backups.restore('orphan', forged.id));
    expect(restored.code).toBe('FLO_STORAGE_NOT_OWNED');
    expect(restored.family).toBe('refused');
    expect(restored.message).toContain(`database "${database}"`);
    expect(restored.message).toContain("tenant orphan's");
    expect(restored.meta).toMatchObject({ tenant: 'orphan', kind: 'database', name: database, server: 'main' });
    expect(await everythingBut()).toEqual(before);
    expect((await flotilla.tenants.get('orphan')).status).toBe('active');
    await deleteBackupRow(flotilla, forged.id);
    await deleteTenantRow(flotilla, orphan.slug);
  });
});
