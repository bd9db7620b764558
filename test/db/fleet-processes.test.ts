import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { EmbeddedServer } from '../../src/postgres/embedded.js';
import { startEmbedded } from '../../src/postgres/embedded.js';
import { events, runCli } from '../support/cli.js';
import { setServerLimit } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
let project: TestProject;
let flotilla: Flotilla;

/** A `flotilla migrate` process whose JSON events can be watched, and which can be killed with SIGKILL. */
function runner(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'migrate', '--json', ...args], { cwd: project.dir, env: project.env });
  let stdout = '';
  const waiters: { test: (s: string) => boolean; resolve: () => void }[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const w of [...waiters]) {
      if (!w.test(stdout)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    exit,
    output: () => stdout,
    until: (test: (s: string) => boolean) => new Promise<void>((resolve) => (test(stdout) ? resolve() : waiters.push({ test, resolve }))),
  };
}

const count = (stdout: string, event: string) => events(stdout).filter((e) => e.event === event).length;

async function tenantState(slug: string) {
  return flotilla.tenants.withClient(slug, async (c) => ({
    history: (await c.query(`SELECT version, remaining FROM flotilla_migrations ORDER BY version`)).rows.map((r) => `${r.version}${r.remaining.length ? '*' : ''}`),
    log: (await c.query('SELECT migration FROM applied_log ORDER BY migration')).rows.map((r) => r.migration),
    rows: (await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n,
  }));
}

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_base.sql':
      'CREATE TABLE items (id serial PRIMARY KEY, v int);\nCREATE TABLE applied_log (migration text NOT NULL);\nINSERT INTO items (v) SELECT g FROM generate_series(1, 25) g;',
  });
  flotilla = await Flotilla.open({ config: { ...project.config, backup: { ...project.config.backup, policy: 'never' } } });
  for (let i = 1; i <= 100; i++) await flotilla.tenants.create({ slug: `f${String(i).padStart(3, '0')}`, kind: 'schema' });
}, 180_000);
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('rollouts with real runner processes', () => {
  it('survives SIGKILL before the first tenant, mid-wave and during a non-transactional statement; resume finishes, transactional statements applied exactly once', async () => {
    await project.write({
      '0002_step.sql': "INSERT INTO applied_log VALUES ('0002');\nUPDATE items SET v = v + 1 WHERE id > 0;",
      '0003_outside.sql': "-- flotilla:no-transaction\nINSERT INTO applied_log VALUES ('0003');\nSELECT pg_sleep(0.15);",
    });
    // 1. Killed right after creating the rollout.
    const first = runner(['--all', '--concurrency', '8']);
    await first.until((s) => count(s, 'rollout.started') === 1);
    first.child.kill('SIGKILL');
    await first.exit;
    const id = events(first.output())[0]!.rollout as string;

    // 2. Resumed, then killed mid-wave.
    const second = runner(['--resume', id, '--concurrency', '8']);
    await second.until((s) => count(s, 'tenant.succeeded') >= 30);
    second.child.kill('SIGKILL');
    await second.exit;
    expect((await flotilla.rollouts.get(id)).counts.succeeded).toBeLessThan(100);

    // 3. Resumed, then killed while a statement outside the transaction runs.
    const third = runner(['--resume', id, '--concurrency', '8']);
    let killedDuringSleep = false;
    for (let i = 0; i < 400 && !killedDuringSleep; i++) {
      const sleeping = await project.query(
        project.config.tenants.schemaDatabase,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'flotilla migrate%' AND query LIKE '%pg_sleep%' AND state = 'active'`,
      );
      if (Number(sleeping[0]!.n) > 0) {
        third.child.kill('SIGKILL');
        killedDuringSleep = true;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    expect(killedDuringSleep).toBe(true);
    await third.exit;

    // 4. Another command refuses to start a second rollout over an unfinished one, and says how to resume.
    const other = await runCli(['migrate', '--tag', 'none'], { cwd: project.dir, env: project.env });
    expect(other.code).toBe(11);
    expect(other.stderr).toContain(`flotilla migrate --resume ${id}`);

    // 5. The killed command, run again as it was, resumes its rollout and finishes it.
    const last = runner(['--all', '--concurrency', '8']);
    expect(await last.exit).toBe(0);
    expect(events(last.output()).find((e) => e.event === 'rollout.resumed')).toMatchObject({ rollout: id });
    const rollout = await flotilla.rollouts.get(id);
    // A tenant killed after its upgrade committed but before its row was updated is rechecked on resume: already at the target.
    expect(rollout).toMatchObject({ status: 'finished', counts: { failed: 0, pending: 0, running: 0 } });
    expect(rollout.counts.succeeded + rollout.counts.skipped).toBe(100);
    for (const slug of (await flotilla.tenants.list()).map((t) => t.slug)) {
      const state = await tenantState(slug);
      expect({ slug, history: state.history, rows: state.rows }).toEqual({ slug, history: ['0001', '0002', '0003'], rows: 25 });
      // 0002 ran in the tenant's transaction, with its history row: exactly once.
      expect(state.log.filter((m) => m === '0002')).toEqual(['0002']);
      // 0003 runs outside any transaction: a statement that finished just before a SIGKILL, before its record
      // was written, runs again on resume (at least once, as the README says).
      expect(state.log.filter((m) => m === '0003').length).toBeGreaterThanOrEqual(1);
    }
    expect((await flotilla.tenants.list()).every((t) => t.status === 'active')).toBe(true);
  });

  it('shares one rollout between two runner processes: every tenant migrated exactly once, by one of them', async () => {
    // Slow enough (100 × 0.2 s over 6 slots) for the second runner, a new process, to join early and take a share.
    await project.write({ '0004_slow.sql': "INSERT INTO applied_log VALUES ('0004');\nSELECT pg_sleep(0.2);" });
    const a = runner(['--all', '--concurrency', '6']);
    await a.until((s) => count(s, 'tenant.succeeded') >= 3);
    const id = events(a.output())[0]!.rollout as string;
    const b = runner(['--join', id]);
    expect([await a.exit, await b.exit]).toEqual([0, 0]);
    const byRunner = new Map<string, string[]>();
    for (const e of [...events(a.output()), ...events(b.output())].filter((e) => e.event === 'tenant.succeeded')) {
      byRunner.set(e.runner, [...(byRunner.get(e.runner) ?? []), e.tenant]);
    }
    const all = [...byRunner.values()].flat();
    expect(all.length).toBe(100);
    expect(new Set(all).size).toBe(100);
    expect(byRunner.size).toBe(2);
    for (const tenants of byRunner.values()) expect(tenants.length).toBeGreaterThanOrEqual(10);
    // The joining runner announces itself by the name its tenants' events carry; the starter names who started it.
    const joined = events(b.output()).find((e) => e.event === 'rollout.joined')!;
    expect(byRunner.has(joined.runner)).toBe(true);
    expect(events(a.output())[0]).toMatchObject({ event: 'rollout.started', startedBy: userInfo().username });
    for (const slug of ['f001', 'f050', 'f100']) expect((await tenantState(slug)).log).toEqual(['0002', '0003', '0004']);
  });
});

describe('a rollout across two servers', () => {
  let second: EmbeddedServer;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-second-'));
    await chmod(dir, 0o755);
    second = await startEmbedded(join(dir, 'pg'));
    port = Number(new URL(second.url).port);
    await flotilla.servers.add('second', second.url);
    await setServerLimit(flotilla, 'second', 1);
    for (let i = 1; i <= 6; i++) await flotilla.tenants.create({ slug: `s2-${i}`, server: 'second' });
  }, 120_000);
  afterAll(async () => {
    await second?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps each server within its limit; when one server stops, its tenants fail with a connection error, the others finish, and a resume finishes them', async () => {
    await project.write({ '0005_pause.sql': "INSERT INTO applied_log VALUES ('0005');\nSELECT pg_sleep(0.2);" });
    const collected: { event: string; tenant?: string; server?: string; code?: string }[] = [];
    const rollout = await flotilla.rollouts.start({ tenants: ['f001', 'f002', 'f003', 'f004', 's2-1', 's2-2', 's2-3', 's2-4', 's2-5', 's2-6'] }, { concurrency: 4 });
    let stopped: Promise<void> | undefined;
    const running = flotilla.rollouts.run(rollout.id, {
      emit: (e) => {
        collected.push(e as never);
        if (e.event === 'tenant.succeeded' && e.tenant === 's2-1') stopped = second.stop();
      },
    });
    const halfway = await running;
    expect(halfway.status).toBe('finished');
    const rows = await flotilla.rollouts.tenants(rollout.id);
    const onSecond = rows.filter((r) => r.server === 'second');
    expect(rows.filter((r) => r.server === 'main').every((r) => r.state === 'succeeded')).toBe(true);
    expect(onSecond.find((r) => r.tenant === 's2-1')!.state).toBe('succeeded');
    const failed = onSecond.filter((r) => r.state === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((r) => r.errorCode === 'FLO_CONNECTION_FAILED')).toBe(true);

    // At most one tenant of the second server was upgrading at any moment.
    let busy = 0;
    let peak = 0;
    const serverOf = new Map(rows.map((r) => [r.tenant, r.server]));
    for (const e of collected) {
      if (!e.tenant || serverOf.get(e.tenant) !== 'second') continue;
      if (e.event === 'tenant.started') peak = Math.max(peak, ++busy);
      else if (e.event.startsWith('tenant.')) busy--;
    }
    expect(peak).toBe(1);

    await stopped;
    second = await startEmbedded(join(dir, 'pg'), { port });
    const resumed = await flotilla.rollouts.resume(rollout.id);
    const errors = (await flotilla.rollouts.tenants(rollout.id)).filter((r) => r.state === 'failed').map((r) => `${r.tenant}: ${r.errorMessage}`);
    expect(errors).toEqual([]);
    expect(resumed).toMatchObject({ status: 'finished', counts: { succeeded: 10, failed: 0 } });
    for (let i = 1; i <= 6; i++) expect((await tenantState(`s2-${i}`)).log).toContain('0005');
  });
});
