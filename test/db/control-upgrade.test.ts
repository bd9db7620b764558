import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * A control database as the version before ownership left it: no storage
 * claims, no operations, passwords inside server URLs. Opening it with this
 * version records what its tenants own, from what it recorded creating.
 */
let project: TestProject;
let flotilla: Flotilla;
const control = () => `${project.prefix}_control`;

/** Takes the control database back to its schema before 0005_ownership.sql (and what came after it). */
const BEFORE_OWNERSHIP = `
  DROP TABLE flotilla.bundle_installs;
  DROP FUNCTION flotilla.bundle_installs_append_only();
  DELETE FROM flotilla.flotilla_migrations WHERE version = '0009';
  DROP TRIGGER tenants_notify_runtime ON flotilla.tenants;
  DROP TRIGGER domains_notify_runtime ON flotilla.domains;
  DROP TRIGGER servers_notify_runtime ON flotilla.servers;
  DROP TABLE flotilla.fleet_maintenance;
  DROP FUNCTION flotilla.notify_runtime();
  ALTER TABLE flotilla.tenants DROP COLUMN maintenance;
  DELETE FROM flotilla.flotilla_migrations WHERE version = '0008';
  DELETE FROM flotilla.flotilla_migrations WHERE version = '0007';
  ALTER TABLE flotilla.audit_events DROP COLUMN details;
  DELETE FROM flotilla.flotilla_migrations WHERE version = '0006';
  DROP TABLE flotilla.storage;
  ALTER TABLE flotilla.tenants DROP COLUMN operation_id;
  DROP TABLE flotilla.operations;
  ALTER TABLE flotilla.backups DROP COLUMN schemas;
  ALTER TABLE flotilla.audit_events DROP COLUMN operation_id;
  ALTER TABLE flotilla.audit_events DROP CONSTRAINT audit_events_outcome_check;
  ALTER TABLE flotilla.audit_events ADD CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('succeeded', 'failed', 'skipped', 'planned')) NOT VALID;
  ALTER TABLE flotilla.servers DROP COLUMN password;
  DELETE FROM flotilla.flotilla_migrations WHERE version = '0005';`;

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL);',
    '0002_events.sql': 'CREATE SCHEMA events;\nCREATE TABLE events.log (id int);',
  });
  const config = { ...project.config, backup: { ...project.config.backup, dir: join(project.dir, 'backups') } };
  let setup = await Flotilla.open({ config });
  await setup.tenants.create({ slug: 'alpha', kind: 'database' });
  await setup.tenants.create({ slug: 'beta', kind: 'schema' });
  await setup.backups.create('alpha', { strategy: 'snapshot' });
  await setup.close();
  // An older version made no roles: the schema tenant's goes, with what it owned handed back.
  for (const { name } of await project.query<{ name: string }>(control(), `SELECT name FROM flotilla.storage WHERE kind = 'role'`)) {
    await project.query(project.config.tenants.schemaDatabase, `REASSIGN OWNED BY "${name}" TO CURRENT_USER; DROP OWNED BY "${name}"`);
    await project.query('postgres', `DROP ROLE "${name}"`);
  }
  await project.query(control(), BEFORE_OWNERSHIP);
  // What the old version allowed: a password inside a server's URL, and two tenants given one database
  // (their 70-character names were cut by PostgreSQL to the same 63 bytes).
  const url = new URL(project.env.FLOTILLA_DATABASE_URL!);
  url.password = 'old-secret';
  await project.query(control(), `INSERT INTO flotilla.servers (name, url) VALUES ('second', $1)`, [url.toString()]);
  const long = `${project.prefix}_${'l'.repeat(60)}`;
  await project.query('postgres', `CREATE DATABASE "${long.slice(0, 63)}"`);
  await project.query(
    control(),
    `INSERT INTO flotilla.tenants (slug, name, kind, server, database_name, schema_name, status, created_at) VALUES
     ('first', 'first', 'database', 'main', $1 || 'a', 'public', 'active', now() - interval '2 days'),
     ('second', 'second', 'database', 'main', $1 || 'b', 'public', 'active', now() - interval '1 day')`,
    [long],
  );
  setup = await Flotilla.open({ config });
  flotilla = setup;
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('a control database from before ownership was recorded', () => {
  it('records what each tenant owns, its backups, and the shared database', async () => {
    const claims = await project.query<{ kind: string; name: string; purpose: string; slug: string | null }>(
      control(),
      `SELECT s.kind, s.name, s.purpose, t.slug FROM flotilla.storage s LEFT JOIN flotilla.tenants t ON t.id = s.tenant_id ORDER BY s.purpose, s.name`,
    );
    const p = project.prefix;
    expect(claims).toEqual(
      expect.arrayContaining([
        { kind: 'database', name: `${p}_alpha`, purpose: 'tenant', slug: 'alpha' },
        { kind: 'schema', name: `${p}_beta`, purpose: 'tenant', slug: 'beta' },
        { kind: 'database', name: `${p}_schemas`, purpose: 'shared', slug: null },
        { kind: 'database', name: expect.stringMatching(/^flotilla_snap_/), purpose: 'backup', slug: 'alpha' },
        { kind: 'database', name: `${p}_${'l'.repeat(60)}`.slice(0, 63), purpose: 'tenant', slug: 'first' },
      ]),
    );
    // The younger of two tenants given one database owns nothing it could destroy.
    expect(claims.filter((c) => c.slug === 'second')).toEqual([]);
    await expect(flotilla.backups.create('second').then((b) => flotilla.backups.restore('second', b.id))).rejects.toMatchObject({ code: 'FLO_STORAGE_NOT_OWNED' });
  });

  it("claims a schema tenant's other schemas when its history shows its own migrations made them", async () => {
    const backup = await flotilla.backups.create('beta');
    expect(backup.schemas).toEqual([`${project.prefix}_beta`, `${project.prefix}_beta__events`]);
    expect((await flotilla.tenants.storage('beta')).map((s) => s.name)).toEqual([`${project.prefix}_beta`, `${project.prefix}_beta__events`]);
  });

  it('keeps server passwords apart from their URLs, and never lists them', async () => {
    const rows = await project.query<{ url: string; password: string | null }>(control(), `SELECT url, password FROM flotilla.servers WHERE name = 'second'`);
    expect(rows[0]!.url).not.toContain('old-secret');
    expect(rows[0]!.password).toBe('old-secret');
    expect(JSON.stringify(await flotilla.servers.list())).not.toContain('old-secret');
  });
});
