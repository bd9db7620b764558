import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/control/audit-log.js';
import { Flotilla } from '../../src/flotilla.js';
import { HISTORY_TABLE } from '../../src/postgres/history.js';
import { setTenantStatus } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { serverUrl, testProject } from '../support/project.js';

/**
 * Every mutating call of the library, made by an instance opened with an
 * actor (as the HTTP API opens one per token), is on the audit trail under
 * that actor: its start, its end, and each tenant it upgraded; and the
 * migrations it applied name that actor in the tenant's own history.
 */
const ACTOR = 'api-token:ci-bot';
const OTHER = 'api-token:someone-else';

let project: TestProject;
let flotilla: Flotilla;
let other: Flotilla;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL);' });
  flotilla = await Flotilla.open({ config: project.config, actor: ACTOR });
  other = await Flotilla.open({ config: project.config, actor: OTHER });
});
afterAll(async () => {
  await other?.close();
  await flotilla?.close();
  await project?.cleanup();
});

/** A tenant's upgrade, recorded by the command that ran it (which has no tenant when it is a migrate). */
const isTenantUpgrade = (e: AuditEvent) => e.command === 'migrate' && e.tenant !== null;

interface Recorded<T> {
  readonly result: T;
  /** The command's own events: its start, then its end. */
  readonly own: AuditEvent[];
  /** The tenants' upgrades it recorded. */
  readonly upgrades: AuditEvent[];
}

/**
 * Runs one call, and checks what it added to the trail (counted before and
 * after; the events before it unchanged): one `started` and one end of
 * `command`, both under `actor` and of one operation, and nothing else but
 * its tenants' upgrades, of that operation and under that actor too.
 */
async function recorded<T>(command: string, call: () => Promise<T>, options: { actor?: string; outcome?: 'succeeded' | 'failed' } = {}): Promise<Recorded<T>> {
  const actor = options.actor ?? ACTOR;
  const before = await flotilla.audit.list({ limit: 100_000 });
  let result: T | undefined;
  let error: unknown;
  try {
    result = await call();
  } catch (e) {
    error = e;
  }
  if (options.outcome !== 'failed' && error) throw error;
  if (options.outcome === 'failed') expect(error, `${command} was expected to fail`).toBeDefined();
  const after = await flotilla.audit.list({ limit: 100_000 });
  expect(after.slice(0, before.length)).toEqual(before);
  const added = after.slice(before.length);
  const own = added.filter((e) => e.command === command && !isTenantUpgrade(e));
  const upgrades = added.filter(isTenantUpgrade);
  const count = (outcome: string) => (events: AuditEvent[]) => events.filter((e) => e.command === command && e.outcome === outcome).length;
  const terminal = (events: AuditEvent[]) => events.filter((e) => e.command === command && !isTenantUpgrade(e) && (e.outcome === 'succeeded' || e.outcome === 'failed')).length;
  expect(count('started')(after) - count('started')(before), `${command}: started events`).toBe(1);
  expect(terminal(after) - terminal(before), `${command}: terminal events`).toBe(1);
  expect(own.map((e) => [e.command, e.outcome, e.actor])).toEqual([
    [command, 'started', actor],
    [command, options.outcome ?? 'succeeded', actor],
  ]);
  expect(own[1]!.operationId).toBe(own[0]!.operationId);
  expect(added.length, `${command}: only its own events and its tenants' upgrades`).toBe(own.length + upgrades.length);
  for (const upgrade of upgrades) expect(upgrade).toMatchObject({ actor, operationId: own[0]!.operationId });
  return { result: result as T, own, upgrades };
}

/** Each tenant upgraded, with its outcome and actor, by slug. */
const upgraded = (events: AuditEvent[]) => events.map((e) => [e.tenant, e.outcome, e.actor]).sort();

/** Who applied each migration, as the tenant's own history records it. */
async function appliedBy(slug: string): Promise<Record<string, string>> {
  const rows = await flotilla.tenants.withClient(
    slug,
    async (c) => (await c.query<{ version: string; applied_by: string }>(`SELECT version, applied_by FROM ${HISTORY_TABLE} ORDER BY version`)).rows,
  );
  return Object.fromEntries(rows.map((r) => [r.version, r.applied_by]));
}

describe('the actor of a Flotilla opened with one', () => {
  it('tenants.create: recorded under it, and the migrations it applied name it', async () => {
    const acme = await recorded('tenant create', () => flotilla.tenants.create({ slug: 'acme' }));
    expect(acme.own.map((e) => e.tenant)).toEqual(['acme', 'acme']);
    expect(acme.upgrades).toEqual([]);
    const globex = await recorded('tenant create', () => flotilla.tenants.create({ slug: 'globex', kind: 'schema' }));
    expect(globex.result.kind).toBe('schema');
    // Another instance, another actor: each call is recorded under its own instance's.
    await recorded('tenant create', () => other.tenants.create({ slug: 'other-co' }), { actor: OTHER });
    await recorded('tenant create', () => other.tenants.create({ slug: 'paused', kind: 'schema' }), { actor: OTHER });
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR });
    expect(await appliedBy('globex')).toEqual({ '0001': ACTOR });
    expect(await appliedBy('other-co')).toEqual({ '0001': OTHER });
    expect(await appliedBy('paused')).toEqual({ '0001': OTHER });
  });

  it('upgrade.migrate: marks the tenant upgrading while it runs and puts it back; skips a suspended tenant and leaves it suspended', async () => {
    await setTenantStatus(flotilla, 'paused', 'suspended');
    await project.write({ '0002_notes.sql': 'CREATE TABLE notes (id int);\nSELECT pg_sleep(1);' });
    let seen = false;
    const { result: report, upgrades } = await recorded('migrate', async () => {
      const running = flotilla.upgrade.migrate({ tenants: ['acme', 'paused'] });
      // Observed from the other instance, as any reader of the registry sees it.
      for (let i = 0; i < 200 && !seen; i++) {
        seen = (await other.tenants.get('acme')).status === 'upgrading';
        if (!seen) await new Promise((r) => setTimeout(r, 10));
      }
      return running;
    });
    expect(seen).toBe(true);
    expect(report.outcomes.map((o) => [o.tenant, o.status])).toEqual([
      ['acme', 'succeeded'],
      ['paused', 'skipped'],
    ]);
    expect(report.outcomes[1]).toMatchObject({ reason: 'tenant is suspended' });
    expect(upgraded(upgrades)).toEqual([
      ['acme', 'succeeded', ACTOR],
      ['paused', 'skipped', ACTOR],
    ]);
    expect((await flotilla.tenants.get('acme')).status).toBe('active');
    expect((await flotilla.tenants.get('paused')).status).toBe('suspended');
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR, '0002': ACTOR });
    expect(await appliedBy('paused')).toEqual({ '0001': OTHER });
  });

  it('rollouts.start, rollouts.run and rollouts.resume: recorded under it, with each tenant the run upgraded', async () => {
    await project.write({ '0003_tag.sql': 'ALTER TABLE notes ADD COLUMN tag text;' });
    const { result: rollout, upgrades: none } = await recorded('rollout start', () => flotilla.rollouts.start({ tenants: ['acme', 'other-co'] }));
    expect(none).toEqual([]);
    expect(rollout.startedBy).toBe(ACTOR);
    const { result: done, upgrades } = await recorded('rollout run', () => flotilla.rollouts.run(rollout.id));
    expect(done).toMatchObject({ status: 'finished', counts: { succeeded: 2, failed: 0 } });
    expect(upgraded(upgrades)).toEqual([
      ['acme', 'succeeded', ACTOR],
      ['other-co', 'succeeded', ACTOR],
    ]);
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR, '0002': ACTOR, '0003': ACTOR });
    expect(await appliedBy('other-co')).toEqual({ '0001': OTHER, '0002': ACTOR, '0003': ACTOR });
    // Resumed once finished: nothing left to run, recorded all the same.
    const resumed = await recorded('rollout resume', () => flotilla.rollouts.resume(rollout.id));
    expect(resumed.result.status).toBe('finished');
    expect(resumed.upgrades).toEqual([]);
  });

  it('rollouts.cancel: recorded under it, whoever started the rollout', async () => {
    await project.write({ '0004_body.sql': 'ALTER TABLE notes ADD COLUMN body text;' });
    const { result: rollout } = await recorded('rollout start', () => other.rollouts.start({ tenants: ['acme'] }), { actor: OTHER });
    expect(rollout.startedBy).toBe(OTHER);
    const { result: cancelled, upgrades } = await recorded('rollout cancel', () => flotilla.rollouts.cancel(rollout.id));
    expect(cancelled.status).toBe('cancelled');
    expect(upgrades).toEqual([]);
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR, '0002': ACTOR, '0003': ACTOR });
  });

  it('backups.create, backups.prune and backups.restore: recorded under it', async () => {
    const older = await recorded('backup', () => other.backups.create('acme'), { actor: OTHER });
    const { result: backup, own } = await recorded('backup', () => flotilla.backups.create('acme'));
    expect(own.map((e) => e.tenant)).toEqual(['acme', 'acme']);
    expect(own[1]!.backupId).toBe(backup.id);
    const { result: removed } = await recorded('backup prune', () => flotilla.backups.prune('acme', 1));
    expect(removed.map((b) => b.id)).toEqual([older.result.id]);
    expect((await flotilla.backups.list('acme')).map((b) => b.id)).toEqual([backup.id]);
    await flotilla.tenants.withClient('acme', (c) => c.query("INSERT INTO members (name) VALUES ('after the backup')"));
    const { result: restored, upgrades } = await recorded('restore', () => flotilla.backups.restore('acme', backup.id));
    expect(restored.tenant).toMatchObject({ slug: 'acme', status: 'active' });
    expect(upgrades).toEqual([]);
    expect(await flotilla.tenants.withClient('acme', async (c) => (await c.query('SELECT count(*)::int AS n FROM members')).rows[0].n)).toBe(0);
    // The history restored is the one backed up: every migration applied by this actor.
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR, '0002': ACTOR, '0003': ACTOR });
  });

  it('a call that fails: its start and its failure, both under it', async () => {
    const { own } = await recorded('backup prune', () => flotilla.backups.prune('nobody', 1), { outcome: 'failed' });
    expect(own[1]).toMatchObject({ tenant: 'nobody', errorCode: 'FLO_TENANT_NOT_FOUND' });
  });

  it('servers.add: recorded under it', async () => {
    const { result: server } = await recorded('server add', () => flotilla.servers.add('same-pg', serverUrl()));
    expect(server.name).toBe('same-pg');
    expect((await flotilla.servers.list()).map((s) => s.name)).toContain('same-pg');
  });

  it("rollouts.migrate (the CLI's migrate): recorded under it, with each tenant it upgraded; a suspended tenant is not selected", async () => {
    const { result: rollout, upgrades } = await recorded('migrate', () => flotilla.rollouts.migrate({ tenants: ['acme', 'globex', 'other-co', 'paused'] }));
    expect(rollout).toMatchObject({ status: 'finished', startedBy: ACTOR, counts: { succeeded: 3, failed: 0 } });
    expect(upgraded(upgrades)).toEqual([
      ['acme', 'succeeded', ACTOR],
      ['globex', 'succeeded', ACTOR],
      ['other-co', 'succeeded', ACTOR],
    ]);
    const all = { '0002': ACTOR, '0003': ACTOR, '0004': ACTOR };
    expect(await appliedBy('acme')).toEqual({ '0001': ACTOR, ...all });
    expect(await appliedBy('globex')).toEqual({ '0001': ACTOR, ...all });
    expect(await appliedBy('other-co')).toEqual({ '0001': OTHER, ...all });
    expect(await appliedBy('paused')).toEqual({ '0001': OTHER });
    expect((await flotilla.tenants.list()).map((t) => [t.slug, t.status])).toEqual([
      ['acme', 'active'],
      ['globex', 'active'],
      ['other-co', 'active'],
      ['paused', 'suspended'],
    ]);
  });

  it('as(actor): the same Flotilla acting for another caller records that one, and closing it closes nothing', async () => {
    const request = flotilla.as(OTHER);
    const { result } = await recorded('backup', () => request.backups.create('globex'), { actor: OTHER });
    expect(result.tenant).toBe('globex');
    await request.close();
    // The opener's sessions are still there, and its own calls still its own actor.
    await recorded('backup', () => flotilla.backups.create('globex'));
  });

  it('no event on the trail names anyone but the two actors', async () => {
    const actors = new Set((await flotilla.audit.list({ limit: 100_000 })).map((e) => e.actor));
    expect([...actors].sort()).toEqual([OTHER, ACTOR].sort());
  });
});
