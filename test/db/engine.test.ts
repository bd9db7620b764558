import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_accounts.sql': 'CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);',
    '0002_seed.sql': "INSERT INTO accounts (owner, balance) VALUES ('ann', 10), ('bob', 250), ('cid', 40);",
  });
  flotilla = await Flotilla.open({ config: project.config });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

async function snapshot(slug: string) {
  return flotilla.tenants.withClient(slug, async (client) => ({
    columns: (await client.query(`SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2`)).rows,
    indexes: (await client.query(`SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1`)).rows,
    rows: (await client.query('SELECT * FROM accounts ORDER BY id')).rows,
    history: (await client.query('SELECT version, name, checksum, remaining FROM flotilla_migrations ORDER BY version')).rows,
  }));
}

describe.each(['database', 'schema'] as const)('the engine on a %s tenant', (kind) => {
  const slug = `bank-${kind}`;

  beforeAll(async () => {
    await flotilla.tenants.create({ slug, kind });
  });

  it('leaves schema, rows and history exactly as they were when the 3rd of 5 pending migrations fails', async () => {
    const pending = {
      '0003_add_currency.sql': "ALTER TABLE accounts ADD COLUMN currency text NOT NULL DEFAULT 'EUR';",
      '0004_audit.sql': 'CREATE TABLE audit (id serial PRIMARY KEY, note text);\nCREATE INDEX audit_note_idx ON audit (note);',
      '0005_minimum.sql': '-- every account must hold at least 100\n\nALTER TABLE accounts\n  ADD CONSTRAINT balance_min CHECK (balance >= 100);',
      '0006_more.sql': 'ALTER TABLE accounts ADD COLUMN frozen boolean;',
      '0007_last.sql': "UPDATE accounts SET owner = upper(owner) WHERE owner <> '';",
    };
    const before = await snapshot(slug);
    await project.write(pending);
    const pendingFiles = Object.keys(pending);
    try {
      const report = await flotilla.upgrade.migrate({ tenants: [slug] });
      expect(report.failed).toBe(1);
      const outcome = report.outcomes[0]!;
      expect(outcome.status).toBe('failed');
      if (outcome.status !== 'failed') return;
      expect(outcome.error.code).toBe('FLO_MIGRATION_FAILED');
      expect(outcome.error.message).toContain(`Tenant ${slug}`);
      expect(outcome.error.message).toContain('0005_minimum.sql:3');
      expect(outcome.error.message).toContain('check constraint "balance_min" of relation "accounts" is violated by some row');
      expect(outcome.error.meta).toMatchObject({ tenant: slug, file: '0005_minimum.sql', line: 3, sqlstate: '23514' });
      expect(await snapshot(slug)).toEqual(before);
    } finally {
      for (const file of pendingFiles) await import('node:fs/promises').then((fs) => fs.rm(`${project.migrationsDir}/${file}`));
    }
  });

  it('retries a failed CREATE INDEX CONCURRENTLY after dropping the INVALID index it left, and resumes after it', async () => {
    const files = {
      '0003_owner_unique.sql': 'CREATE UNIQUE INDEX CONCURRENTLY accounts_owner_key ON accounts (owner);',
      '0004_after.sql': 'CREATE TABLE after_index (id int);',
    };
    await flotilla.tenants.withClient(slug, (c) => c.query("INSERT INTO accounts (owner, balance) VALUES ('ann', 1)"));
    await project.write(files);
    try {
      const first = await flotilla.upgrade.migrate({ tenants: [slug] });
      expect(first.outcomes[0]!.status).toBe('failed');
      const failed = first.outcomes[0]!;
      if (failed.status === 'failed') expect(failed.error.message).toContain('could not create unique index "accounts_owner_key"');
      const midway = await flotilla.tenants.withClient(slug, async (c) => ({
        index: (
          await c.query(
            `SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname = 'accounts_owner_key' AND x.relnamespace = current_schema()::regnamespace`,
          )
        ).rows,
        history: (await c.query(`SELECT name, remaining FROM flotilla_migrations WHERE version IN ('0003', '0004') ORDER BY version`)).rows,
        table: (await c.query(`SELECT to_regclass('after_index') IS NOT NULL AS present`)).rows[0].present,
      }));
      // The transactional part committed; the index build is recorded as still to run, and PostgreSQL left it INVALID.
      expect(midway.index).toEqual([{ indisvalid: false }]);
      expect(midway.history).toEqual([
        { name: 'owner_unique', remaining: [0] },
        { name: 'after', remaining: [] },
      ]);
      expect(midway.table).toBe(true);
      const status = (await flotilla.status.fleet()).find((s) => s.slug === slug)!;
      expect(status.pending).toBe(1);

      await flotilla.tenants.withClient(slug, (c) => c.query("DELETE FROM accounts WHERE owner = 'ann' AND balance = 1"));
      const second = await flotilla.upgrade.migrate({ tenants: [slug] });
      expect(second.outcomes[0]!.status).toBe('succeeded');
      const after = await flotilla.tenants.withClient(slug, async (c) => ({
        index: (
          await c.query(
            `SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname = 'accounts_owner_key' AND x.relnamespace = current_schema()::regnamespace`,
          )
        ).rows,
        remaining: (await c.query(`SELECT remaining FROM flotilla_migrations WHERE version = '0003'`)).rows,
      }));
      expect(after.index).toEqual([{ indisvalid: true }]);
      expect(after.remaining).toEqual([{ remaining: [] }]);
      const third = await flotilla.upgrade.migrate({ tenants: [slug] });
      expect(third.outcomes[0]!.status).toBe('skipped');
    } finally {
      await flotilla.tenants.withClient(slug, (c) =>
        c.query("DROP INDEX IF EXISTS accounts_owner_key; DROP TABLE IF EXISTS after_index; DELETE FROM flotilla_migrations WHERE version >= '0003'"),
      );
      for (const file of Object.keys(files)) await import('node:fs/promises').then((fs) => fs.rm(`${project.migrationsDir}/${file}`));
    }
  });

  it('records index builds in a row once, yet keeps those that ran when a later one fails, and never builds one twice', async () => {
    const files = {
      '0003_indexes.sql': 'CREATE INDEX CONCURRENTLY accounts_balance_idx ON accounts (balance);\nCREATE UNIQUE INDEX CONCURRENTLY accounts_owner_key ON accounts (owner);',
    };
    const history = () => flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT remaining FROM flotilla_migrations WHERE version = '0003'`)).rows);
    const indexes = () =>
      flotilla.tenants.withClient(
        slug,
        async (c) =>
          (
            await c.query(
              `SELECT x.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname LIKE 'accounts\\_%' AND x.relnamespace = current_schema()::regnamespace ORDER BY 1`,
            )
          ).rows,
      );
    await flotilla.tenants.withClient(slug, (c) => c.query("INSERT INTO accounts (owner, balance) VALUES ('ann', 1)"));
    await project.write(files);
    try {
      expect((await flotilla.upgrade.migrate({ tenants: [slug] })).outcomes[0]!.status).toBe('failed');
      // The first build is written down before the error: only the second is still to run.
      expect(await history()).toEqual([{ remaining: [1] }]);
      await flotilla.tenants.withClient(slug, (c) => c.query("DELETE FROM accounts WHERE owner = 'ann' AND balance = 1"));
      expect((await flotilla.upgrade.migrate({ tenants: [slug] })).outcomes[0]!.status).toBe('succeeded');
      expect(await history()).toEqual([{ remaining: [] }]);
      // As if killed after both builds but before their history row: the resumed run finds both built.
      await flotilla.tenants.withClient(slug, (c) => c.query(`UPDATE flotilla_migrations SET remaining = '{0,1}' WHERE version = '0003'`));
      const resumed = (await flotilla.upgrade.migrate({ tenants: [slug] })).outcomes[0]!;
      expect(resumed.status).toBe('succeeded');
      expect(await history()).toEqual([{ remaining: [] }]);
      expect(await indexes()).toEqual([
        { name: 'accounts_balance_idx', valid: true },
        { name: 'accounts_owner_key', valid: true },
        { name: 'accounts_pkey', valid: true },
      ]);
    } finally {
      await flotilla.tenants.withClient(slug, (c) =>
        c.query("DROP INDEX IF EXISTS accounts_balance_idx; DROP INDEX IF EXISTS accounts_owner_key; DELETE FROM flotilla_migrations WHERE version >= '0003'"),
      );
      for (const file of Object.keys(files)) await import('node:fs/promises').then((fs) => fs.rm(`${project.migrationsDir}/${file}`));
    }
  });

  it('refuses a changed applied file and an applied file deleted from disk, applying nothing', async () => {
    const fs = await import('node:fs/promises');
    const original = await fs.readFile(`${project.migrationsDir}/0002_seed.sql`, 'utf8');
    await project.write({ '0002_seed.sql': `${original}\n-- edited`, '0003_new.sql': 'CREATE TABLE never (id int);' });
    try {
      const changed = await flotilla.upgrade.migrate({ tenants: [slug] });
      const outcome = changed.outcomes[0]!;
      expect(outcome.status === 'failed' && outcome.error.code).toBe('FLO_CHECKSUM_CHANGED');
      await fs.rm(`${project.migrationsDir}/0002_seed.sql`);
      const missing = await flotilla.upgrade.migrate({ tenants: [slug] });
      const missingOutcome = missing.outcomes[0]!;
      expect(missingOutcome.status === 'failed' && missingOutcome.error.code).toBe('FLO_MIGRATION_MISSING');
      const problems = (await flotilla.status.fleet()).find((s) => s.slug === slug)!.problems.map((p) => p.code);
      expect(problems).toEqual(['FLO_MIGRATION_MISSING']);
      const present = await flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT to_regclass('never') AS t`)).rows[0].t);
      expect(present).toBeNull();
    } finally {
      await project.write({ '0002_seed.sql': original });
      await fs.rm(`${project.migrationsDir}/0003_new.sql`);
    }
  });
});
