import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutEvent } from '../../src/core/events.js';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

const bad = ['bad-1', 'bad-2', 'bad-3'];
const good = Array.from({ length: 47 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`);

function collector(): { events: RolloutEvent[]; emit: (e: RolloutEvent) => void } {
  const events: RolloutEvent[] = [];
  return { events, emit: (e) => events.push(e) };
}

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, email text NOT NULL);' });
  flotilla = await Flotilla.open({ config: { ...project.config, backup: { ...project.config.backup, policy: 'never' } } });
  for (const slug of [...bad, ...good]) {
    await flotilla.tenants.create({ slug, kind: 'schema' });
    // Three tenants hold the same email twice: a unique index cannot be built on them.
    const rows = bad.includes(slug) ? "('a@x.org'), ('a@x.org'), ('b@x.org')" : "('a@x.org'), ('b@x.org'), ('c@x.org')";
    await flotilla.tenants.withClient(slug, (c) => c.query(`INSERT INTO members (email) VALUES ${rows}`));
  }
}, 120_000);
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('fleet rollouts', () => {
  it('upgrades canary first, then waves; skips tenants already at the target in bulk; 47 succeed and the 3 failing tenants are unchanged', async () => {
    await project.write({ '0002_unique_email.sql': 'CREATE UNIQUE INDEX members_email_key ON members (email);' });
    const { events, emit } = collector();
    const rollout = await flotilla.rollouts.start({ all: true }, { canary: 't01,t02', waveSize: 20, concurrency: 4 });
    expect(rollout.counts).toMatchObject({ total: 50, pending: 50, skipped: 0 });
    const done = await flotilla.rollouts.run(rollout.id, { emit });
    expect(done).toMatchObject({ status: 'finished', counts: { succeeded: 47, failed: 3, skipped: 0, pending: 0, running: 0 } });

    const started = events.filter((e) => e.event === 'tenant.started') as Extract<RolloutEvent, { event: 'tenant.started' }>[];
    // The two canaries start first (two workers claim them at once, in either order).
    expect(
      started
        .slice(0, 2)
        .map((e) => [e.tenant, e.wave])
        .sort(),
    ).toEqual([
      ['t01', 0],
      ['t02', 0],
    ]);
    // No tenant of a later wave starts before every tenant of the wave before it finished.
    const finishedAt = new Map<string, number>();
    for (const [i, e] of events.entries()) if ('tenant' in e && e.event !== 'tenant.started') finishedAt.set(e.tenant, i);
    for (const wave of [1, 2, 3]) {
      const firstOfWave = events.findIndex((e) => e.event === 'tenant.started' && e.wave === wave);
      const earlier = started.filter((e) => e.wave < wave).map((e) => finishedAt.get(e.tenant)!);
      expect(Math.max(...earlier)).toBeLessThan(firstOfWave);
    }
    const tenants = await flotilla.rollouts.tenants(rollout.id);
    const failed = tenants.filter((t) => t.state === 'failed');
    expect(failed.map((t) => t.tenant).sort()).toEqual(bad);
    for (const t of failed) expect(t.errorMessage).toContain('could not create unique index "members_email_key"');
    for (const slug of bad) {
      const state = await flotilla.tenants.withClient(slug, async (c) => ({
        index: (await c.query(`SELECT to_regclass('members_email_key') AS i`)).rows[0].i,
        rows: (await c.query('SELECT count(*)::int AS n FROM members')).rows[0].n,
        history: (await c.query('SELECT count(*)::int AS n FROM flotilla_migrations')).rows[0].n,
      }));
      expect(state).toEqual({ index: null, rows: 3, history: 1 });
    }
    // Every tenant is back to its registry status.
    expect((await flotilla.tenants.list()).every((t) => t.status === 'active')).toBe(true);

    const again = await flotilla.rollouts.start({ all: true });
    expect(again.counts).toMatchObject({ total: 50, skipped: 47, pending: 3 });
    await flotilla.rollouts.cancel(again.id);
  });

  it('halts once the failure budget is exceeded: no new tenant starts after the third failure', async () => {
    // The failing tenants come first in this order, and run one at a time.
    const { events, emit } = collector();
    const rollout = await flotilla.rollouts.start({ all: true }, { concurrency: 1, maxFailures: '2' });
    expect(rollout.counts.pending).toBe(3);
    await project.write({ '0003_more.sql': 'ALTER TABLE members ADD COLUMN name text;' });
    const fresh = await flotilla.rollouts.start({ tenants: [...bad, 't01', 't02', 't03'] }, { concurrency: 1, maxFailures: '2' });
    await flotilla.rollouts.cancel(rollout.id);
    const done = await flotilla.rollouts.run(fresh.id, { emit });
    expect(done.status).toBe('halted');
    expect(done.haltReason).toBe('failure budget exceeded: 3 tenants failed, at most 2 allowed');
    expect(done.counts).toMatchObject({ failed: 3, succeeded: 0, pending: 3 });
    const halted = events.findIndex((e) => e.event === 'rollout.halted');
    expect(halted).toBeGreaterThan(0);
    expect(events.slice(halted).some((e) => e.event === 'tenant.started')).toBe(false);
    expect(events.filter((e) => e.event === 'tenant.failed').map((e) => (e as { tenant: string }).tenant)).toEqual(bad);
  });

  it('halts when a canary fails, before any other tenant starts', async () => {
    const { events, emit } = collector();
    const rollout = await flotilla.rollouts.start({ tenants: ['bad-1', 't10', 't11'] }, { canary: 'bad-1' });
    const done = await flotilla.rollouts.run(rollout.id, { emit });
    expect(done).toMatchObject({ status: 'halted', haltReason: 'canary tenant bad-1 failed' });
    expect(events.filter((e) => e.event === 'tenant.started').map((e) => (e as { tenant: string }).tenant)).toEqual(['bad-1']);
  });

  it('runs the canary check with the canary slugs, and goes on only when it exits 0', async () => {
    const failing = await flotilla.rollouts.start({ tenants: ['t12', 't13', 't14'] }, { canary: '1', canaryCheck: 'test "$1" = nobody' });
    const halted = await flotilla.rollouts.run(failing.id, collector());
    expect(halted).toMatchObject({ status: 'halted', haltReason: 'canary check `test "$1" = nobody` exited with 1', counts: { succeeded: 1, pending: 2 } });
    const passing = await flotilla.rollouts.start({ tenants: ['t15', 't16', 't17'] }, { canary: '1', canaryCheck: 'test "$1" = t15 && test "$FLOTILLA_CANARY_TENANTS" = t15' });
    const { events, emit } = collector();
    const done = await flotilla.rollouts.run(passing.id, { emit });
    expect(done).toMatchObject({ status: 'finished', counts: { succeeded: 3 } });
    expect(events.find((e) => e.event === 'canary.check')).toMatchObject({ passed: true, tenants: ['t15'] });
    await flotilla.rollouts.cancel(failing.id);
  });

  it('marks a tenant upgrading while it is upgraded, and puts its status back', async () => {
    await project.write({ '0004_slow.sql': 'SELECT pg_sleep(1);' });
    const rollout = await flotilla.rollouts.start({ tenants: ['t20'] });
    const running = flotilla.rollouts.run(rollout.id);
    let seen = false;
    for (let i = 0; i < 60 && !seen; i++) {
      seen = (await flotilla.tenants.get('t20')).status === 'upgrading';
      if (!seen) await new Promise((r) => setTimeout(r, 25));
    }
    expect(seen).toBe(true);
    expect((await running).status).toBe('finished');
    expect((await flotilla.tenants.get('t20')).status).toBe('active');
  });

  it('orders a rollout by size, smallest first, with --order size', async () => {
    await flotilla.tenants.withClient('t30', (c) => c.query("INSERT INTO members (email) SELECT 'x' || g || '@big.org' FROM generate_series(1, 5000) g"));
    const rollout = await flotilla.rollouts.start({ tenants: ['t30', 't31', 't32'] }, { order: 'size' });
    const order = (await flotilla.rollouts.tenants(rollout.id)).sort((a, b) => a.position - b.position).map((t) => t.tenant);
    expect(order[order.length - 1]).toBe('t30');
    await flotilla.rollouts.cancel(rollout.id);
  });

  it('selects tenants by tag', async () => {
    await flotilla.tenants.create({ slug: 'tagged-a', kind: 'schema', tags: ['eu', 'beta'] });
    await flotilla.tenants.create({ slug: 'tagged-b', kind: 'schema', tags: ['us'] });
    expect((await flotilla.tenants.get('tagged-a')).tags).toEqual(['eu', 'beta']);
    expect((await flotilla.rollouts.select({ tags: ['beta'] })).map((t) => t.slug)).toEqual(['tagged-a']);
    expect((await flotilla.rollouts.select({ tags: ['eu', 'us'] })).map((t) => t.slug)).toEqual(['tagged-a', 'tagged-b']);
  });
});
