import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { connect } from '../../src/postgres/connect.js';
import { serverWithSecret } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_base.sql': 'CREATE TABLE items (id serial PRIMARY KEY, name text);' });
  const config = { ...project.config, engine: { ...project.config.engine, lockTimeout: '700ms', statementTimeout: '45s' } };
  flotilla = await Flotilla.open({ config });
  await flotilla.tenants.create({ slug: 'shop' });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('timeouts', () => {
  it('runs migrations with the configured lock_timeout and statement_timeout', async () => {
    await project.write({
      '0002_settings.sql': "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout, current_setting('statement_timeout') AS statement_timeout;",
    });
    expect((await flotilla.upgrade.migrate({ tenants: ['shop'] })).failed).toBe(0);
    const rows = await flotilla.tenants.withClient('shop', async (c) => (await c.query('SELECT * FROM seen')).rows);
    expect(rows).toEqual([{ lock_timeout: '700ms', statement_timeout: '45s' }]);
  });

  it('gives up on a table another session holds, instead of queueing behind it, and leaves the tenant unchanged', async () => {
    const tenant = await flotilla.tenants.get('shop');
    const server = await serverWithSecret(flotilla, tenant.server);
    const blocker = await connect(server.url, tenant.database);
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE items IN ACCESS SHARE MODE');
      await project.write({ '0003_alter.sql': 'CREATE TABLE extra (id int);\nALTER TABLE items ADD COLUMN price int;' });
      const report = await flotilla.upgrade.migrate({ tenants: ['shop'] });
      const outcome = report.outcomes[0]!;
      expect(outcome.status).toBe('failed');
      if (outcome.status === 'failed') {
        expect(outcome.error.message).toContain('0003_alter.sql:2: canceling statement due to lock timeout');
        expect(outcome.error.meta.sqlstate).toBe('55P03');
      }
      const extra = await flotilla.tenants.withClient('shop', async (c) => (await c.query(`SELECT to_regclass('extra') AS t`)).rows[0].t);
      expect(extra).toBeNull();
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    expect((await flotilla.upgrade.migrate({ tenants: ['shop'] })).outcomes[0]!.status).toBe('succeeded');
  });

  it('reports a session killed mid-upgrade as a lost connection, with the tenant unchanged, and finishes on the next run', async () => {
    await project.write({ '0004_slow.sql': 'CREATE TABLE during (id int);\nSELECT pg_sleep(1.5);' });
    const running = flotilla.upgrade.migrate({ tenants: ['shop'] });
    const tenant = await flotilla.tenants.get('shop');
    let killed = false;
    for (let i = 0; i < 100 && !killed; i++) {
      // Only this tenant's database: other test files migrate on the same server at the same time.
      const rows = await project.query(
        tenant.database,
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE 'flotilla migrate%' AND query LIKE '%pg_sleep%' AND state = 'active'`,
      );
      killed = rows.length > 0;
      if (!killed) await new Promise((r) => setTimeout(r, 50));
    }
    expect(killed).toBe(true);
    const outcome = (await running).outcomes[0]!;
    expect(outcome.status).toBe('failed');
    if (outcome.status === 'failed') {
      expect(outcome.error.code).toBe('FLO_CONNECTION_FAILED');
      expect(outcome.error.message).toContain('0004_slow.sql:2');
    }
    const during = await flotilla.tenants.withClient('shop', async (c) => (await c.query(`SELECT to_regclass('during') AS t`)).rows[0].t);
    expect(during).toBeNull();
    expect((await flotilla.upgrade.migrate({ tenants: ['shop'] })).outcomes[0]!.status).toBe('succeeded');
  });
});
