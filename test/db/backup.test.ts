import { appendFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/postgres/connect.js';
import { Flotilla } from '../../src/flotilla.js';
import { recordAuditEvent, serverWithSecret } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;
const SLUGS = ['gamma', 'delta'] as const;

async function counts(slug: string) {
  return flotilla.tenants.withClient(
    slug,
    async (c) =>
      (
        await c.query(`SELECT (SELECT count(*) FROM members)::int AS members, (SELECT count(*) FROM loans)::int AS loans,
    (SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'members' AND column_name = 'phone')::int AS phone_column`)
      ).rows[0],
  );
}

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL, phone text);',
    '0002_loans.sql': 'CREATE TABLE loans (id serial PRIMARY KEY, member_id int NOT NULL REFERENCES members (id), amount int NOT NULL);',
  });
  flotilla = await Flotilla.open({ config: { ...project.config, backup: { ...project.config.backup, dir: join(project.dir, 'backups') } } });
  await flotilla.tenants.create({ slug: 'gamma', kind: 'database' });
  await flotilla.tenants.create({ slug: 'delta', kind: 'schema' });
  for (const slug of SLUGS) {
    await flotilla.tenants.withClient(slug, async (c) => {
      await c.query("INSERT INTO members (name, phone) SELECT 'm' || i, '555-' || i FROM generate_series(1, 30) i");
      await c.query('INSERT INTO loans (member_id, amount) SELECT 1 + i % 30, i FROM generate_series(1, 40) i');
    });
  }
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('backups and restore (a database tenant and a schema tenant)', () => {
  it('applies a column drop allowed with a reason, taking a backup first; restore brings the exact rows and the column back', async () => {
    await project.write({ '0003_drop_phone.sql': '-- flotilla:allow FD103 reason="phone numbers now live in the CRM"\nALTER TABLE members DROP COLUMN phone;' });
    const report = await flotilla.upgrade.migrate({ tenants: [...SLUGS] });
    for (const outcome of report.outcomes) {
      expect(outcome.status).toBe('succeeded');
      if (outcome.status !== 'succeeded') continue;
      expect(outcome.backup!.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(outcome.backup!.reasons).toContain('FD103 at 0003_drop_phone.sql:2');
      expect(outcome.verification!.allowedLosses).toEqual([
        expect.objectContaining({ code: 'FV703', table: 'members', column: 'phone', before: 30, allowedBecause: 'phone numbers now live in the CRM' }),
      ]);
    }
    for (const slug of SLUGS) {
      expect(await counts(slug)).toEqual({ members: 30, loans: 40, phone_column: 0 });
      const [backup] = await flotilla.backups.list(slug);
      expect(backup).toMatchObject({ strategy: 'dump', schemaVersion: '0002', reason: expect.stringContaining('before migrate') });
      const restored = await flotilla.backups.restore(slug, backup!.id);
      expect(restored.tenant.status).toBe('active');
      expect(await counts(slug)).toEqual({ members: 30, loans: 40, phone_column: 1 });
      const phones = await flotilla.tenants.withClient(slug, async (c) => (await c.query('SELECT count(phone)::int AS n FROM members')).rows[0].n);
      expect(phones).toBe(30);
      // The tenant is back at the version of the backup: the drop is pending again.
      expect((await flotilla.status.fleet()).find((s) => s.slug === slug)).toMatchObject({ version: '0002', pending: 1 });
    }
    await rm(join(project.migrationsDir, '0003_drop_phone.sql'));
  });

  it('applies a DELETE without WHERE allowed with a reason, taking a backup first; restore brings the exact rows back', async () => {
    await project.write({ '0003_reset_loans.sql': '-- flotilla:allow FD105 reason="loans are re-imported from the ledger"\nDELETE FROM loans;' });
    const report = await flotilla.upgrade.migrate({ tenants: [...SLUGS] });
    for (const outcome of report.outcomes) expect(outcome.status === 'succeeded' && outcome.backup?.id).toBeTruthy();
    for (const slug of SLUGS) {
      expect(await counts(slug)).toMatchObject({ members: 30, loans: 0 });
      const [backup] = await flotilla.backups.list(slug);
      await flotilla.backups.restore(slug, backup!.id);
      expect(await counts(slug)).toMatchObject({ members: 30, loans: 40 });
    }
    await rm(join(project.migrationsDir, '0003_reset_loans.sql'));
  });

  it('restores into a new tenant with --as, leaving the original as it is', async () => {
    for (const slug of SLUGS) {
      const backup = await flotilla.backups.create(slug);
      const copy = await flotilla.backups.restore(slug, backup.id, { as: `${slug}-copy` });
      expect(copy.tenant).toMatchObject({ slug: `${slug}-copy`, kind: backup.kind, status: 'active' });
      expect(await counts(`${slug}-copy`)).toEqual(await counts(slug));
    }
  });

  it('refuses a backup file changed since it was taken, and changes nothing', async () => {
    for (const slug of SLUGS) {
      const backup = await flotilla.backups.create(slug);
      await flotilla.tenants.withClient(slug, (c) => c.query("INSERT INTO members (name) VALUES ('after the backup')"));
      const before = await counts(slug);
      await appendFile(backup.location, 'x');
      await expect(flotilla.backups.restore(slug, backup.id)).rejects.toMatchObject({
        code: 'FLO_BACKUP_TAMPERED',
        message: expect.stringContaining('has changed since it was taken'),
      });
      expect(await counts(slug)).toEqual(before);
      expect((await flotilla.tenants.get(slug)).status).toBe('active');
    }
  });

  it('reports a restore whose rows do not match the backup as failed, and changes nothing', async () => {
    for (const slug of SLUGS) {
      const backup = await flotilla.backups.create(slug);
      const before = await counts(slug);
      // The catalog says the backup held one more member than the file does.
      await project.query(
        `${project.prefix}_control`,
        `UPDATE flotilla.backups SET fingerprint = jsonb_set(fingerprint, $2, to_jsonb((fingerprint #>> $2)::int + 1)) WHERE id = $1`,
        [backup.id, [Object.keys(backup.rowCounts).find((k) => k.endsWith('.members'))!]],
      );
      await expect(flotilla.backups.restore(slug, backup.id)).rejects.toMatchObject({
        code: 'FLO_RESTORE_FAILED',
        message: expect.stringMatching(/members: 3\d recorded, 3\d restored/),
      });
      expect(await counts(slug)).toEqual(before);
    }
  });

  it('fails clearly when pg_dump is missing, naming it and how to install it, with nothing half-written', async () => {
    const path = process.env.PATH;
    // An empty directory: no pg_dump anywhere on PATH.
    process.env.PATH = await mkdtemp(join(tmpdir(), 'no-tools-'));
    try {
      const backupsBefore = (await flotilla.backups.list('gamma')).length;
      const error = await flotilla.backups.create('gamma').catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'FLO_TOOL_MISSING',
        message: expect.stringContaining('pg_dump is not installed'),
        hint: expect.stringContaining('apt-get install postgresql-client-15'),
      });
      expect((await flotilla.backups.list('gamma')).length).toBe(backupsBefore);
      expect((await readdir(join(project.dir, 'backups', 'gamma'))).filter((f) => f.endsWith('.partial'))).toEqual([]);
      // A risky upgrade is not applied without its backup.
      await project.write({ '0003_drop_phone.sql': '-- flotilla:allow FD103 reason="moved"\nALTER TABLE members DROP COLUMN phone;' });
      const outcome = (await flotilla.upgrade.migrate({ tenants: ['gamma'] })).outcomes[0]!;
      expect(outcome.status === 'failed' && outcome.error.code).toBe('FLO_TOOL_MISSING');
      expect((await counts('gamma')).phone_column).toBe(1);
    } finally {
      process.env.PATH = path;
      await rm(join(project.migrationsDir, '0003_drop_phone.sql'), { force: true });
    }
  });

  it('takes a snapshot of a database tenant, says why it cannot while sessions are open, and falls back to a dump by policy', async () => {
    const snapshot = await flotilla.backups.create('gamma', { strategy: 'snapshot' });
    expect(snapshot).toMatchObject({ strategy: 'snapshot', location: expect.stringMatching(/^flotilla_snap_/) });
    const tenant = await flotilla.tenants.get('gamma');
    const server = await serverWithSecret(flotilla, tenant.server);
    const session = await connect(server.url, tenant.database, 'the app');
    try {
      await expect(flotilla.backups.create('gamma', { strategy: 'snapshot' })).rejects.toMatchObject({
        code: 'FLO_SNAPSHOT_UNAVAILABLE',
        message: expect.stringContaining('the app'),
      });
      const fallback = await Flotilla.open({
        config: { ...flotilla.config, databaseUrl: project.config.databaseUrl, backup: { ...flotilla.config.backup, strategy: 'snapshot', fallbackToDump: true } },
      });
      try {
        expect((await fallback.backups.create('gamma')).strategy).toBe('dump');
      } finally {
        await fallback.close();
      }
    } finally {
      await session.end();
    }
    await expect(flotilla.backups.create('delta', { strategy: 'snapshot' })).rejects.toMatchObject({
      code: 'FLO_SNAPSHOT_UNAVAILABLE',
      message: expect.stringContaining('schema tenant'),
    });
  });

  it('keeps only the newest N backups with --keep, removing their files and snapshot databases', async () => {
    const before = await flotilla.backups.list('gamma');
    expect(before.length).toBeGreaterThan(3);
    expect(before.some((b) => b.strategy === 'snapshot')).toBe(true);
    const kept = await flotilla.backups.create('gamma', { keep: 2 });
    const after = await flotilla.backups.list('gamma');
    expect(after.map((b) => b.id)).toEqual([kept.id, before[0]!.id]);
    const removed = before.slice(1);
    const files = new Set((await readdir(join(project.dir, 'backups', 'gamma'))).map((f) => join(project.dir, 'backups', 'gamma', f)));
    const databases = new Set((await project.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database')).map((r) => r.datname));
    for (const backup of removed) expect(backup.strategy === 'dump' ? files.has(backup.location) : databases.has(backup.location)).toBe(false);
    for (const backup of after) expect(backup.strategy === 'dump' ? files.has(backup.location) : databases.has(backup.location)).toBe(true);
  });
});

describe('the audit trail', () => {
  it('refuses UPDATE, DELETE and TRUNCATE in the database itself', async () => {
    const control = `${project.prefix}_control`;
    for (const sql of ['UPDATE flotilla.audit_events SET outcome = $1', 'DELETE FROM flotilla.audit_events WHERE outcome = $1', 'TRUNCATE flotilla.audit_events']) {
      const params = sql.includes('$1') ? ['succeeded'] : [];
      await expect(project.query(control, sql, params)).rejects.toMatchObject({ message: expect.stringContaining('audit_events is append-only') });
    }
  });

  it('holds one event for every tenant create, migrate (per tenant), backup and restore this file ran', async () => {
    const events = await flotilla.audit.list();
    // Every command has its start and its end on the record, linked by its operation id.
    const started = events.filter((e) => e.outcome === 'started');
    for (const start of started)
      expect(
        events.filter((e) => e.operationId === start.operationId && e.tenant === start.tenant && ['succeeded', 'failed'].includes(e.outcome)).length,
        start.command,
      ).toBeGreaterThanOrEqual(1);
    // The ends of commands (a migrate's per-tenant events aside, which carry the tenant).
    const by = (command: string) => events.filter((e) => e.command === command && e.outcome !== 'started' && !(command === 'migrate' && e.tenant === null));
    // tenant create: gamma, delta (copies are restores).
    expect(by('tenant create').map((e) => [e.tenant, e.outcome])).toEqual([
      ['gamma', 'succeeded'],
      ['delta', 'succeeded'],
    ]);
    // migrate: 2 tenants × 2 upgrades, then gamma refused for lack of pg_dump.
    expect(by('migrate').map((e) => [e.tenant, e.outcome])).toEqual([
      ['gamma', 'succeeded'],
      ['delta', 'succeeded'],
      ['gamma', 'succeeded'],
      ['delta', 'succeeded'],
      ['gamma', 'failed'],
    ]);
    expect(by('migrate')[0]).toMatchObject({
      versionBefore: '0002',
      versionAfter: '0003',
      backupId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      actor: expect.any(String),
      durationMs: expect.any(Number),
    });
    expect(by('migrate')[4]).toMatchObject({ errorCode: 'FLO_TOOL_MISSING' });
    const restores = by('restore');
    expect(restores.filter((e) => e.outcome === 'succeeded')).toHaveLength(6);
    expect(restores.filter((e) => e.outcome === 'failed').map((e) => e.errorCode)).toEqual([
      'FLO_BACKUP_TAMPERED',
      'FLO_BACKUP_TAMPERED',
      'FLO_RESTORE_FAILED',
      'FLO_RESTORE_FAILED',
    ]);
    const backups = by('backup');
    expect(backups.filter((e) => e.outcome === 'failed').map((e) => e.errorCode)).toEqual(['FLO_TOOL_MISSING', 'FLO_SNAPSHOT_UNAVAILABLE', 'FLO_SNAPSHOT_UNAVAILABLE']);
    expect(backups.every((e) => e.outcome === 'failed' || e.backupId)).toBe(true);
  });

  it('never records a password', async () => {
    const tenant = await flotilla.tenants.get('gamma');
    const server = await serverWithSecret(flotilla, tenant.server);
    const url = new URL(server.url);
    url.password = 'hunter2-secret';
    await recordAuditEvent(flotilla, { command: 'server add', arguments: { url: url.toString(), password: 'x' }, outcome: 'succeeded', durationMs: 1 });
    const rows = await project.query(`${project.prefix}_control`, `SELECT arguments::text AS a FROM flotilla.audit_events WHERE command = 'server add'`);
    expect(rows[0]!.a).not.toContain('hunter2');
    expect(rows[0]!.a).toContain('***');
  });
});

describe('the backup decision (policy risky), made on the plan under the tenant lock', () => {
  it('takes no backup for index builds outside the transaction: nothing they do can lose a row', async () => {
    const before = (await flotilla.backups.list()).length;
    await project.write({
      '0003_indexes.sql': 'CREATE INDEX CONCURRENTLY loans_member_idx ON loans (member_id);\nCREATE UNIQUE INDEX CONCURRENTLY members_name_key ON members (name);',
    });
    const report = await flotilla.upgrade.migrate({ tenants: [...SLUGS] });
    expect(report.outcomes.map((o) => [o.tenant, o.status, o.status === 'succeeded' && o.backup])).toEqual([
      ['gamma', 'succeeded', null],
      ['delta', 'succeeded', null],
    ]);
    expect((await flotilla.backups.list()).length).toBe(before);
  });

  it('backs up a back-fill first: a snapshot of a database tenant (taken with the session closed), a dump of a schema tenant', async () => {
    await project.write({ '0004_backfill.sql': "UPDATE members SET phone = 'unknown' WHERE phone IS NULL;" });
    const snapshots = await Flotilla.open({
      config: { ...flotilla.config, databaseUrl: project.config.databaseUrl, backup: { ...flotilla.config.backup, strategy: 'snapshot', fallbackToDump: true } },
    });
    try {
      const dryRun = await snapshots.upgrade.migrate({ tenants: [...SLUGS], dryRun: true });
      expect(dryRun.outcomes.map((o) => o.status === 'planned' && o.backup)).toEqual([
        { reasons: ['UPDATE of existing rows at 0004_backfill.sql:1'], id: null },
        { reasons: ['UPDATE of existing rows at 0004_backfill.sql:1'], id: null },
      ]);
      const report = await snapshots.upgrade.migrate({ tenants: [...SLUGS] });
      for (const outcome of report.outcomes) expect(outcome).toMatchObject({ status: 'succeeded', fromVersion: '0003', toVersion: '0004', backup: { id: expect.any(String) } });
      const strategies = await Promise.all(SLUGS.map(async (slug) => (await snapshots.backups.list(slug))[0]));
      expect(strategies.map((b) => [b!.tenant, b!.strategy, b!.schemaVersion])).toEqual([
        ['gamma', 'snapshot', '0003'],
        ['delta', 'dump', '0003'],
      ]);
    } finally {
      await snapshots.close();
    }
  });
});
