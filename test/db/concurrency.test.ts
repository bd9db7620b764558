import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { events, runCli, tenantResults } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_log.sql': 'CREATE TABLE applied_log (migration text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());' });
  flotilla = await Flotilla.open({ config: project.config });
  await flotilla.tenants.create({ slug: 'shared-one' });
  await flotilla.tenants.create({ slug: 'other', kind: 'schema' });
  await flotilla.tenants.create({ slug: 'third', kind: 'schema' });
  await project.write({
    '0002_slow.sql': "INSERT INTO applied_log (migration) VALUES ('0002');\nSELECT pg_sleep(1.5);\nINSERT INTO applied_log (migration) VALUES ('0002-end');",
    '0003_next.sql': "INSERT INTO applied_log (migration) VALUES ('0003');",
  });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('concurrent migrations', () => {
  it('two processes migrating the same tenant at once apply each migration exactly once', async () => {
    const [a, b] = await Promise.all([
      runCli(['migrate', '--tenant', 'shared-one', '--json'], { cwd: project.dir, env: project.env }),
      runCli(['migrate', '--tenant', 'shared-one', '--json'], { cwd: project.dir, env: project.env }),
    ]);
    expect([a.code, b.code, a.stderr, b.stderr]).toEqual([0, 0, '', '']);
    // Whichever came second found the tenant up to date: when it started (skipped in bulk) or once it held the lock.
    const statuses = [a, b].map((r) => tenantResults(r.stdout)['shared-one'] ?? (events(r.stdout)[0]!.skipped === 1 ? 'skipped' : 'none')).sort();
    expect(statuses).toEqual(['skipped', 'succeeded']);
    const log = await flotilla.tenants.withClient('shared-one', async (c) => (await c.query('SELECT migration FROM applied_log ORDER BY at')).rows);
    expect(log.map((r) => r.migration)).toEqual(['0002', '0002-end', '0003']);
    const history = await flotilla.tenants.withClient('shared-one', async (c) => (await c.query('SELECT version FROM flotilla_migrations ORDER BY version')).rows);
    expect(history.map((r) => r.version)).toEqual(['0001', '0002', '0003']);
  });

  it('two tenants in one database migrate at the same time without blocking each other (one lock key per tenant)', async () => {
    await Promise.all([flotilla.upgrade.migrate({ tenants: ['other'] }), flotilla.upgrade.migrate({ tenants: ['third'] })]);
    const spans = await Promise.all(
      ['other', 'third'].map((slug) =>
        flotilla.tenants.withClient(
          slug,
          async (c) => (await c.query(`SELECT min(at) AS start, max(at) FILTER (WHERE migration = '0002-end') AS finish FROM applied_log`)).rows[0],
        ),
      ),
    );
    const [x, y] = spans as { start: Date; finish: Date }[];
    // Each ran its 1.5 s migration while the other was inside its own: the intervals overlap.
    expect(x!.start.getTime()).toBeLessThan(y!.finish.getTime());
    expect(y!.start.getTime()).toBeLessThan(x!.finish.getTime());
  });

  it('status reports a locked tenant, and a second migration of it gives up after lockWaitMs naming the session that holds it', async () => {
    await project.write({ '0004_slow_again.sql': 'SELECT pg_sleep(2);' });
    const impatient = await Flotilla.open({ config: { ...project.config, engine: { ...project.config.engine, lockWaitMs: 300 } } });
    try {
      const first = flotilla.upgrade.migrate({ tenants: ['shared-one'] });
      await waitForLockHolder(project, 'flotilla migrate');
      const locked = (await flotilla.status.fleet()).find((t) => t.slug === 'shared-one')!;
      expect(locked.problems.map((p) => p.code)).toEqual(['FLO_TENANT_LOCKED']);
      expect(locked.problems[0]!.message).toMatch(/^locked by session \d+ \(flotilla migrate /);
      const second = await impatient.upgrade.migrate({ tenants: ['shared-one'] });
      const outcome = second.outcomes[0]!;
      expect(outcome.status).toBe('failed');
      if (outcome.status === 'failed') {
        expect(outcome.error.code).toBe('FLO_TENANT_LOCKED');
        expect(outcome.error.message).toMatch(/^Tenant shared-one is locked by session \d+ \(flotilla migrate [0-9a-f-]{36}/);
      }
      const firstOutcome = (await first).outcomes[0]!;
      expect(firstOutcome.status === 'failed' ? firstOutcome.error.message : firstOutcome.status).toBe('succeeded');
    } finally {
      await impatient.close();
    }
  });
});

/** Waits until a session of `application` holds an advisory lock in one of the project's databases. */
async function waitForLockHolder(project: TestProject, application: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const rows = await project.query(
      'postgres',
      `SELECT 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
        WHERE a.application_name LIKE $1 AND a.datname LIKE $2`,
      [`${application}%`, `${project.prefix}%`],
    );
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no session of ${application} appeared`);
}
