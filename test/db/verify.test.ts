import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TenantOutcome } from '../../src/index.js';
import { migrateTarget } from '../../src/engine/migrate-target.js';
import { tenancyModel } from '../../src/tenancy/models.js';
import { serverWithSecret } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/** Every step runs on a database tenant and a schema tenant, which share the migration files. */
const SLUGS = ['alpha', 'beta'] as const;

let project: TestProject;
let flotilla: Flotilla;
/** Files a refused step wrote; removed after it so the next step starts from the same directory. */
let temporary: string[] = [];

async function write(files: Record<string, string>, options: { keep: boolean }): Promise<void> {
  if (!options.keep) temporary.push(...Object.keys(files));
  await project.write(files);
}

async function migrateEach(): Promise<Map<string, TenantOutcome>> {
  const report = await flotilla.upgrade.migrate({ tenants: [...SLUGS] });
  return new Map(report.outcomes.map((o) => [o.tenant, o]));
}

function errorOf(outcome: TenantOutcome | undefined): { code: string; message: string } | string {
  return outcome?.status === 'failed' ? { code: outcome.error.code, message: outcome.error.message } : String(outcome?.status);
}

/** The engine without the lint gate: what would reach a tenant if someone bypassed `flotilla migrate`. */
async function forcePastLint(slug: string): Promise<{ code: string; message: string } | string> {
  const tenant = await flotilla.tenants.get(slug);
  const server = await serverWithSecret(flotilla, tenant.server);
  const set = await flotilla.lint.migrations();
  return migrateTarget(tenancyModel(tenant.kind).target(tenant, server, set), set, {}).then(
    (result) => result.status,
    (error: { code: string; message: string }) => ({ code: error.code, message: error.message }),
  );
}

async function state(slug: string) {
  return flotilla.tenants.withClient(slug, async (c) => ({
    columns: (await c.query(`SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2`)).rows,
    members: (await c.query('SELECT * FROM members ORDER BY id')).rows,
    loans: (await c.query('SELECT * FROM loans ORDER BY id')).rows,
    history: (await c.query('SELECT version, name FROM flotilla_migrations ORDER BY version')).rows,
  }));
}

async function states() {
  return Promise.all(SLUGS.map(state));
}

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL, phone text);',
    '0002_loans.sql': 'CREATE TABLE loans (id serial PRIMARY KEY, member_id int NOT NULL REFERENCES members (id) ON DELETE CASCADE, amount int NOT NULL);',
  });
  flotilla = await Flotilla.open({ config: project.config });
  await flotilla.tenants.create({ slug: 'alpha', kind: 'database' });
  await flotilla.tenants.create({ slug: 'beta', kind: 'schema' });
  for (const slug of SLUGS) {
    await flotilla.tenants.withClient(slug, async (c) => {
      await c.query("INSERT INTO members (name, phone) SELECT 'member ' || i, '555-' || i FROM generate_series(1, 20) i");
      await c.query('INSERT INTO loans (member_id, amount) SELECT 1 + (i % 20), 100 * i FROM generate_series(1, 50) i');
    });
  }
});
afterEach(async () => {
  for (const file of temporary) await rm(join(project.migrationsDir, file), { force: true });
  temporary = [];
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('verified upgrades (a database tenant and a schema tenant)', () => {
  it('scenario S1: adds client_id nullable, back-fills it, makes it NOT NULL; every row kept and back-filled', async () => {
    await write(
      {
        '0003_client_id.sql': `CREATE TABLE clients (id serial PRIMARY KEY, code text NOT NULL UNIQUE);
INSERT INTO clients (code) VALUES ('CLIENT_A');
ALTER TABLE members ADD COLUMN client_id int REFERENCES clients (id);
ALTER TABLE loans ADD COLUMN client_id int REFERENCES clients (id);
UPDATE members SET client_id = (SELECT id FROM clients WHERE code = 'CLIENT_A') WHERE client_id IS NULL;
UPDATE loans SET client_id = (SELECT id FROM clients WHERE code = 'CLIENT_A') WHERE client_id IS NULL;
ALTER TABLE members ALTER COLUMN client_id SET NOT NULL;
ALTER TABLE loans ALTER COLUMN client_id SET NOT NULL;`,
      },
      { keep: true },
    );
    const outcomes = await migrateEach();
    for (const slug of SLUGS) {
      const outcome = outcomes.get(slug)!;
      expect(errorOf(outcome)).toBe('succeeded');
      if (outcome.status === 'succeeded') expect(outcome.verification).toMatchObject({ tables: 2, allowedLosses: [] });
      const counts = await flotilla.tenants.withClient(
        slug,
        async (c) =>
          (
            await c.query(`SELECT (SELECT count(*) FROM members)::int AS members, (SELECT count(*) FROM loans)::int AS loans,
        (SELECT count(*) FROM members WHERE client_id IS NULL)::int + (SELECT count(*) FROM loans WHERE client_id IS NULL)::int AS missing`)
          ).rows[0],
      );
      expect(counts).toEqual({ members: 20, loans: 50, missing: 0 });
    }
  });

  it('refuses a migration dropping a column that holds data: by lint, and by verification when forced past lint', async () => {
    const before = await states();
    await write({ '0004_drop_phone.sql': 'ALTER TABLE members DROP COLUMN phone;' }, { keep: false });
    const outcomes = await migrateEach();
    for (const slug of SLUGS) {
      expect(errorOf(outcomes.get(slug))).toMatchObject({ code: 'FLO_LINT_REFUSED', message: expect.stringContaining('0004_drop_phone.sql:1 FD103') });
      expect(await forcePastLint(slug)).toEqual({ code: 'FLO_DATA_LOSS', message: expect.stringContaining('members.phone: 20 values before, column gone (FV703)') });
    }
    expect(await states()).toEqual(before);
  });

  it('counts a NOT NULL column by its rows: dropping one, or nulling it after DROP NOT NULL, is caught', async () => {
    const before = await states();
    await write({ '0004_drop_name.sql': 'ALTER TABLE members DROP COLUMN name;' }, { keep: false });
    for (const slug of SLUGS)
      expect(await forcePastLint(slug)).toEqual({ code: 'FLO_DATA_LOSS', message: expect.stringContaining('members.name: 20 values before, column gone (FV703)') });
    await rm(join(project.migrationsDir, '0004_drop_name.sql'));
    await write({ '0004_null_names.sql': 'ALTER TABLE members ALTER COLUMN name DROP NOT NULL;\nUPDATE members SET name = NULL WHERE id <= 5;' }, { keep: false });
    for (const slug of SLUGS)
      expect(await forcePastLint(slug)).toEqual({ code: 'FLO_DATA_LOSS', message: expect.stringContaining('members.name: 20 values before, 15 values after (FV703)') });
    expect(await states()).toEqual(before);
  });

  it('refuses a DELETE without WHERE: by lint, and by verification (with the rows its cascade removes) when forced past lint', async () => {
    const before = await states();
    await write({ '0004_purge.sql': 'DELETE FROM members;' }, { keep: false });
    const outcomes = await migrateEach();
    for (const slug of SLUGS) {
      expect(errorOf(outcomes.get(slug))).toMatchObject({ code: 'FLO_LINT_REFUSED' });
      const forced = await forcePastLint(slug);
      expect(forced).toMatchObject({ code: 'FLO_DATA_LOSS' });
      expect((forced as { message: string }).message).toContain('members: 20 rows before, 0 rows after (FV701)');
      expect((forced as { message: string }).message).toContain('loans: 50 rows before, 0 rows after (FV701)');
    }
    expect(await states()).toEqual(before);
  });

  it('catches rows replaced under the same count (their keys gone, new keys in their place)', async () => {
    const before = await states();
    await write(
      { '0004_swap.sql': 'DELETE FROM loans WHERE id <= 5;\nINSERT INTO loans (member_id, amount, client_id) SELECT 1, 1, 1 FROM generate_series(1, 5);' },
      { keep: false },
    );
    const outcomes = await migrateEach();
    for (const slug of SLUGS)
      expect(errorOf(outcomes.get(slug))).toEqual({
        code: 'FLO_DATA_LOSS',
        message: expect.stringContaining('loans: 50 rows before, 45 rows after, 5 of them replaced by other rows (FV701)'),
      });
    expect(await states()).toEqual(before);
  });

  it('applies a loss allowed with a reason on the statement that causes it, and reports it', async () => {
    await write({ '0004_trim.sql': '-- flotilla:allow FV701 reason="loans under 500 were test data"\nDELETE FROM loans WHERE amount < 500;' }, { keep: true });
    const outcomes = await migrateEach();
    for (const slug of SLUGS) {
      const outcome = outcomes.get(slug)!;
      expect(errorOf(outcome)).toBe('succeeded');
      if (outcome.status === 'succeeded') {
        expect(outcome.verification!.allowedLosses).toEqual([
          expect.objectContaining({ code: 'FV701', table: 'loans', before: 50, after: 46, allowedBecause: 'loans under 500 were test data' }),
        ]);
      }
    }
  });

  it('follows renamed tables and columns instead of reporting them lost', async () => {
    await write({ '0005_rename.sql': 'ALTER TABLE members RENAME COLUMN phone TO telephone;\nALTER TABLE loans RENAME TO credits;' }, { keep: true });
    for (const outcome of (await migrateEach()).values()) expect(errorOf(outcome)).toBe('succeeded');
    await write({ '0006_back.sql': 'ALTER TABLE members RENAME COLUMN telephone TO phone;\nALTER TABLE credits RENAME TO loans;' }, { keep: true });
    for (const outcome of (await migrateEach()).values()) expect(errorOf(outcome)).toBe('succeeded');
  });

  it('rolls the tenant back when a verify file returns false', async () => {
    const before = await states();
    await write(
      { '0007_bonus.sql': 'UPDATE loans SET amount = amount - 1000 WHERE id > 0;', '0007_bonus.verify.sql': 'SELECT count(*) = 0 FROM loans WHERE amount <= 0;' },
      { keep: false },
    );
    const outcomes = await migrateEach();
    for (const slug of SLUGS)
      expect(errorOf(outcomes.get(slug))).toEqual({
        code: 'FLO_VERIFY_FAILED',
        message: expect.stringMatching(slug === 'alpha' ? /0007_bonus.verify.sql:1 returned \[\[false\]\]/ : /0007_bonus.verify.sql:1 returned 1 row, not a single true/),
      });
    expect(await states()).toEqual(before);
  });

  it('commits when every verify query returns no rows or true', async () => {
    await write(
      {
        '0007_bonus.sql': 'UPDATE loans SET amount = amount + 1 WHERE id > 0;',
        '0007_bonus.verify.sql': 'SELECT count(*) = 0 FROM loans WHERE amount <= 0;\nSELECT id FROM loans WHERE amount IS NULL;',
      },
      { keep: true },
    );
    for (const outcome of (await migrateEach()).values()) expect(errorOf(outcome)).toBe('succeeded');
  });
});
