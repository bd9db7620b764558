import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FlotillaError } from '../../src/core/errors.js';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * Engine messages know which phase failed and say exactly what was kept: a
 * failure after a committed transaction (an index built concurrently, outside
 * it) names its phase and what stays, never "as it was before"; a failure in
 * the first transaction keeps the plain message, since then nothing was kept.
 */

let project: TestProject;
let flotilla: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_base.sql': 'CREATE TABLE base (id int PRIMARY KEY);' });
  flotilla = await Flotilla.open({ config: project.config });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe.each(['database', 'schema'] as const)('the failed phase of a %s tenant', (kind) => {
  const slug = `phases-${kind}`;
  const written: string[] = [];

  beforeAll(async () => {
    await flotilla.tenants.create({ slug, kind });
  });
  afterEach(async () => {
    // Each test's migrations and what they made go, so the next test starts from 0001.
    await flotilla.tenants.withClient(slug, (c) => c.query("DROP TABLE IF EXISTS t, u; DELETE FROM flotilla_migrations WHERE version > '0001'"));
    for (const file of written.splice(0)) await rm(join(project.migrationsDir, file), { force: true });
  });

  async function write(files: Record<string, string>): Promise<void> {
    written.push(...Object.keys(files));
    await project.write(files);
  }

  async function failure(): Promise<FlotillaError> {
    const report = await flotilla.upgrade.migrate({ tenants: [slug] });
    const outcome = report.outcomes[0]!;
    expect(outcome.status).toBe('failed');
    if (outcome.status !== 'failed') throw new Error('the upgrade did not fail');
    return outcome.error;
  }

  const history = () =>
    flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT version, remaining FROM flotilla_migrations WHERE version > '0001' ORDER BY version`)).rows);
  const index = () =>
    flotilla.tenants.withClient(
      slug,
      async (c) =>
        (
          await c.query(
            `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname = 't_col_key' AND x.relnamespace = current_schema()::regnamespace`,
          )
        ).rows,
    );

  it('a failed CREATE INDEX CONCURRENTLY after a committed transaction names its phase and says the transaction was kept', async () => {
    await write({
      '0002_unique.sql':
        "CREATE TABLE t (id int PRIMARY KEY, col text NOT NULL);\nINSERT INTO t (id, col) VALUES (1, 'a'), (2, 'a'), (3, 'b');\nCREATE UNIQUE INDEX CONCURRENTLY t_col_key ON t (col);",
    });
    const error = await failure();
    expect(error.code).toBe('FLO_MIGRATION_FAILED');
    expect(error.message).toContain(`Tenant ${slug}: 0002_unique.sql:3: could not create unique index "t_col_key"`);
    expect(error.message).toContain('[phase 2 of 2, outside a transaction');
    expect(error.hint).toContain('This statement ran outside a transaction, so nothing rolls it back');
    expect(error.hint).toContain('an index it left INVALID is dropped and built again by the next run');
    expect(error.hint).toContain('Kept from this run, committed and recorded: the transaction of 0002_unique.');
    expect(error.hint).toContain('The tenant is not as it was before the run');
    expect(error.hint).not.toContain('as it was before it');
    expect(error.meta).toMatchObject({ tenant: slug, phase: 2, kept: ['the transaction of 0002_unique'], sqlstate: '23505', file: '0002_unique.sql', line: 3 });

    // Partly applied: the table and its rows are there, the history says the index build is still to run, PostgreSQL left the index INVALID.
    expect(await history()).toEqual([{ version: '0002', remaining: [2] }]);
    expect(await flotilla.tenants.withClient(slug, async (c) => (await c.query('SELECT id, col FROM t ORDER BY id')).rows)).toEqual([
      { id: 1, col: 'a' },
      { id: 2, col: 'a' },
      { id: 3, col: 'b' },
    ]);
    expect(await index()).toEqual([{ valid: false }]);
    expect((await flotilla.status.fleet()).find((s) => s.slug === slug)!.pending).toBe(1);

    // The data fixed, the next run drops the INVALID index, builds it again, and completes the migration.
    await flotilla.tenants.withClient(slug, (c) => c.query('DELETE FROM t WHERE id = 2'));
    const again = await flotilla.upgrade.migrate({ tenants: [slug] });
    expect(again.outcomes[0]!.status).toBe('succeeded');
    expect(await history()).toEqual([{ version: '0002', remaining: [] }]);
    expect(await index()).toEqual([{ valid: true }]);
    expect((await flotilla.upgrade.migrate({ tenants: [slug] })).outcomes[0]!.status).toBe('skipped');
  });

  it('a failed later transaction, after an index built outside one, names its phase and lists both kept phases', async () => {
    await write({
      '0002_index.sql': 'CREATE TABLE t (id int PRIMARY KEY, col text NOT NULL);\nCREATE UNIQUE INDEX CONCURRENTLY t_col_key ON t (col);',
      // Uses the index built outside the transaction: a transaction of its own, after it.
      '0003_constraint.sql': 'ALTER TABLE t ADD CONSTRAINT t_col_unique UNIQUE USING INDEX t_col_key;\nSELECT 1/0;',
    });
    const error = await failure();
    expect(error.code).toBe('FLO_MIGRATION_FAILED');
    expect(error.message).toBe(`Tenant ${slug}: 0003_constraint.sql:2: division by zero [phase 3 of 3, a transaction]`);
    expect(error.hint).toContain('This transaction was rolled back: nothing of it was kept.');
    expect(error.hint).toContain('Kept from this run, committed and recorded: the transaction of 0002_index; 0002_index.sql:2.');
    expect(error.hint).not.toContain('as it was before it');
    expect(error.meta).toMatchObject({ phase: 3, kept: ['the transaction of 0002_index', '0002_index.sql:2'] });
    expect(await history()).toEqual([
      { version: '0002', remaining: [] },
      { version: '0003', remaining: [0, 1] },
    ]);
    expect(await index()).toEqual([{ valid: true }]);
  });

  it('a failure in the one transaction of a one-phase plan keeps the plain message: the tenant is as it was before it', async () => {
    await write({ '0002_broken.sql': 'CREATE TABLE u (id int);\nSELECT 1/0;' });
    const error = await failure();
    expect(error.code).toBe('FLO_MIGRATION_FAILED');
    expect(error.message).toBe(`Tenant ${slug}: 0002_broken.sql:2: division by zero`);
    expect(error.message).not.toContain('[phase');
    expect(error.hint).toContain('the tenant is as it was before it');
    expect(error.hint).not.toContain('Kept from this run');
    expect(error.meta).not.toHaveProperty('kept');
    expect(await history()).toEqual([]);
    expect(await flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT to_regclass('u') AS u`)).rows[0].u)).toBeNull();
  });

  it('a failure in the first transaction of a two-phase plan also says the tenant is as it was: nothing was kept', async () => {
    await write({ '0002_early.sql': 'CREATE TABLE t (id int PRIMARY KEY, col text NOT NULL);\nSELECT 1/0;\nCREATE UNIQUE INDEX CONCURRENTLY t_col_key ON t (col);' });
    const error = await failure();
    expect(error.message).toBe(`Tenant ${slug}: 0002_early.sql:2: division by zero`);
    expect(error.hint).toContain('the tenant is as it was before it');
    expect(error.meta).not.toHaveProperty('kept');
    expect(await history()).toEqual([]);
    expect(await flotilla.tenants.withClient(slug, async (c) => (await c.query(`SELECT to_regclass('t') AS t`)).rows[0].t)).toBeNull();
  });
});
