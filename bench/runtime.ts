/**
 * bench:runtime — the tenant runtime under HTTP load, against the same app
 * without tenancy, in the same run.
 *
 * BENCH_TENANTS (default 1,000) tenants created through the library:
 * BENCH_DATABASES (default 100) database tenants, the rest schema tenants in
 * one shared database; each holds the runtime tests' tables (`who`, its one
 * row its own slug; `items`, BENCH_ITEMS rows, default 1,000, so that the
 * planner takes the index). The plain baseline is one database with the same
 * tables holding every tenant's rows (who: one row per tenant).
 *
 * Both apps are the same node:http server (bench/runtime-app.ts), each in a
 * child process of its own, with at most the same number of connections:
 *   tenant: the tenant named by X-Tenant-ID (runtime.admit, within, db.query);
 *   plain: one pg.Pool on the plain database.
 * Each request names a random tenant (BENCH_MIX: all, the default, or only
 * database or only schema tenants) and one of its items; every answer's slug
 * is checked against the tenant the request named. Per connection budget
 * (BENCH_BUDGETS, default: enough for every database to keep a session, then
 * a tight one below the number of databases), BENCH_ROUNDS rounds (default 3)
 * of tenant then plain, each app in a new process: BENCH_WARMUP s (default 30:
 * each server process of the shared database meets 900 schemas' tables for
 * the first time) of load, then BENCH_DURATION s (default 20) measured,
 * BENCH_CONNECTIONS (default 32) HTTP connections (autocannon, in this
 * process). pg_stat_activity is read every 50 ms for the app's sessions, and
 * /proc for the CPU time of the app and of its server processes.
 * BENCH_PROFILE=1 writes a CPU profile of each app process. BENCH_KEEP=1
 * leaves the databases in place, and the next run uses them when they have
 * the same shape.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { Flotilla, loadConfig } from '../src/index.js';
import { benchServer, dropBenchStorage, loadAverage, median, withPg } from './support.js';
import { quoteIdent } from '../src/core/sql/quote.js';
import { adminDatabase, withDatabase } from '../src/postgres/server-url.js';

const TENANTS = Number(process.env.BENCH_TENANTS ?? 1_000);
const DATABASES = Number(process.env.BENCH_DATABASES ?? 100);
const SCHEMAS = TENANTS - DATABASES;
const ITEMS = Number(process.env.BENCH_ITEMS ?? 1_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_S = Number(process.env.BENCH_WARMUP ?? 30);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 20);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const CREATE_CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 6);
/** Which tenants the requests name: all (default), or only the database or only the schema tenants (to see each kind's cost). */
const MIX = process.env.BENCH_MIX ?? 'all';
const GOAL = 0.9;
const APP = fileURLToPath(new URL('./runtime-app.ts', import.meta.url));
const PREFIX = 'bench_rt_';
const CONTROL = `${PREFIX}control`;
const SCHEMA_DB = `${PREFIX}schemas`;
const PLAIN = `${PREFIX}plain`;
// The same tables as the runtime tests' fixture (test/support/runtime.ts).
const WHO_SQL =
  'CREATE TABLE who (id int PRIMARY KEY, slug text NOT NULL);\nCREATE TABLE items (id serial PRIMARY KEY, who_id int NOT NULL, label text NOT NULL);\nCREATE INDEX items_who_idx ON items (who_id);';
const QUERY = 'SELECT w.slug, i.label FROM items i JOIN who w ON w.id = i.who_id WHERE i.id = $1';

if (!(DATABASES >= 1 && SCHEMAS >= 1)) throw new Error('BENCH_TENANTS must exceed BENCH_DATABASES, which must be at least 1');
const width = String(Math.max(SCHEMAS, DATABASES)).length;
/** Tenant t: the database tenants first, then the schema tenants. */
const slugs = [
  ...Array.from({ length: DATABASES }, (_, i) => `d${String(i + 1).padStart(width, '0')}`),
  ...Array.from({ length: SCHEMAS }, (_, i) => `s${String(i + 1).padStart(width, '0')}`),
];

/** The tenants requests are drawn from, as indexes into slugs. */
if (!['all', 'database', 'schema'].includes(MIX)) throw new Error(`BENCH_MIX must be all, database or schema, not ${MIX}`);
const drawn = slugs.map((_, t) => t).filter((t) => MIX === 'all' || (MIX === 'database') === t < DATABASES);

const server = await benchServer();
const urlOf = (database: string) => withDatabase(server.url, database);
const adminUrl = urlOf(adminDatabase(server.url));
const controlUrl = urlOf(CONTROL);

async function cleanup(): Promise<void> {
  await dropBenchStorage(adminUrl, controlUrl, async (c) =>
    (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_rt\\_%'`)).rows.map((r) => r.datname),
  );
}

/** The databases an earlier run left (BENCH_KEEP) hold exactly this run's tenants and rows. */
async function kept(): Promise<boolean> {
  try {
    const shape = await withPg(
      urlOf(PLAIN),
      async (c) => (await c.query<{ tenants: number; databases: number; items: number }>('SELECT tenants, databases, items FROM bench_shape')).rows[0],
    );
    if (shape?.tenants !== TENANTS || shape.databases !== DATABASES || shape.items !== ITEMS) return false;
    const active = await withPg(controlUrl, async (c) =>
      (await c.query<{ slug: string }>(`SELECT slug FROM flotilla.tenants WHERE status = 'active' ORDER BY slug`)).rows.map((r) => r.slug),
    );
    return active.join(',') === [...slugs].sort().join(',');
  } catch {
    return false;
  }
}

/** Every tenant, through the library, with its rows; then the plain database with all of them. */
async function create(): Promise<void> {
  await cleanup();
  const dir = await mkdtemp(join(tmpdir(), 'bench-runtime-'));
  await mkdir(join(dir, 'migrations'));
  await writeFile(join(dir, 'migrations', '0001_who.sql'), WHO_SQL);
  await writeFile(
    join(dir, 'flotilla.config.json'),
    JSON.stringify({ migrationsDir: 'migrations', tenants: { databasePrefix: PREFIX, schemaPrefix: PREFIX, schemaDatabase: SCHEMA_DB }, backup: { policy: 'never' } }),
  );
  const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: controlUrl } });
  const instances: Flotilla[] = [];
  try {
    // A Flotilla per worker: the registry's pool holds 4 connections.
    for (let w = 0; w < CREATE_CONCURRENCY; w++) instances.push(await Flotilla.open({ config }));
    const started = performance.now();
    const make = async (flotilla: Flotilla, t: number) => {
      const slug = slugs[t]!;
      await flotilla.tenants.create({ slug, kind: slug.startsWith('d') ? 'database' : 'schema' });
      await flotilla.tenants.withClient(slug, async (c) => {
        await c.query('INSERT INTO who (id, slug) VALUES (1, $1)', [slug]);
        await c.query(`INSERT INTO items (who_id, label) SELECT 1, $1 || '-' || i FROM generate_series(1, ${ITEMS}) i`, [slug]);
        await c.query('ANALYZE who, items');
      });
    };
    // The first schema tenant alone: it makes the shared database.
    await make(instances[0]!, DATABASES);
    const queue = slugs.map((_, t) => t).filter((t) => t !== DATABASES);
    let done = 1;
    await Promise.all(
      instances.map(async (flotilla) => {
        for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
          await make(flotilla, t);
          if (++done % 100 === 0) console.log(`  … ${done} tenants created, ${((performance.now() - started) / 1000).toFixed(0)} s`);
        }
      }),
    );
    console.log(`  ${TENANTS} tenants created through the library, ${CREATE_CONCURRENCY} at a time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await Promise.all(instances.map((f) => f.close()));
    await rm(dir, { recursive: true, force: true });
  }
  await withPg(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(PLAIN)}`));
  await withPg(urlOf(PLAIN), async (c) => {
    await c.query(WHO_SQL);
    await c.query('INSERT INTO who (id, slug) SELECT t, ($1::text[])[t] FROM generate_series(1, $2::int) t', [slugs, TENANTS]);
    await c.query(
      `INSERT INTO items (id, who_id, label) SELECT (t - 1) * ${ITEMS} + i, t, ($1::text[])[t] || '-' || i FROM generate_series(1, $2::int) t, generate_series(1, ${ITEMS}) i`,
      [slugs, TENANTS],
    );
    await c.query('ANALYZE who, items');
    await c.query('CREATE TABLE bench_shape (tenants int, databases int, items int)');
    await c.query('INSERT INTO bench_shape VALUES ($1, $2, $3)', [TENANTS, DATABASES, ITEMS]);
  });
}

/** The plan of the request's query in a database tenant, a schema tenant and the plain database (each should use an index). */
async function plans(): Promise<string> {
  const plan = async (database: string, schema: string, id: number) =>
    withPg(urlOf(database), async (c) => {
      await c.query(`SET search_path TO ${quoteIdent(schema)}`);
      const rows = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${QUERY.replace('$1', String(id))}`)).rows;
      return rows.map((r) => r['QUERY PLAN'].trim().replace(/^->\s*/, '')).join(' / ');
    });
  return [
    `database tenant: ${await plan(`${PREFIX}${slugs[0]}`, 'public', 7)}`,
    `schema tenant: ${await plan(SCHEMA_DB, `${PREFIX}${slugs[DATABASES]}`, 7)}`,
    `plain: ${await plan(PLAIN, 'public', 7)}`,
  ].join('\n    ');
}

/** Counts the sessions named `name` every 50 ms; `stop` gives the most seen at once. */
async function sampler(name: string): Promise<{ stop(): Promise<number> }> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'bench:runtime sampler' });
  await client.connect();
  let max = 0;
  let busy: Promise<void> | undefined;
  const tick = () => {
    if (busy) return;
    busy = client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [name]).then((r) => {
      max = Math.max(max, r.rows[0]!.n);
      busy = undefined;
    });
  };
  tick();
  const timer = setInterval(tick, 50);
  let stopped: Promise<number> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        clearInterval(timer);
        await busy;
        await client.end();
        return max;
      })();
      return stopped;
    },
  };
}

/** The runtime's own counters (BudgetStats). */
interface Counters {
  readonly opened: number;
  readonly evicted: number;
  readonly peak: number;
  readonly checkouts?: number;
  readonly rebinds?: number;
}

interface App {
  readonly port: number;
  readonly child: ChildProcess;
  stats(): Promise<{ connections?: Counters }>;
  stop(): Promise<void>;
}

async function startApp(kind: 'tenant' | 'plain', budget: number, name: string, profileDir: string | undefined): Promise<App> {
  const flags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, kind)}`] : [];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', APP], {
    env: { ...process.env, BENCH_APP: kind, BENCH_URL: kind === 'tenant' ? controlUrl : urlOf(PLAIN), BENCH_BUDGET: String(budget), BENCH_APP_NAME: name },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`the ${kind} app exited (${code}) before listening`)));
  });
  return {
    port,
    child,
    stats: async () => (await fetch(`http://127.0.0.1:${port}/stats`)).json() as Promise<{ connections?: Counters }>,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      // The next round starts once every session of this one has gone.
      await withPg(adminUrl, async (c) => {
        for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
          const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1', [`${name}%`]);
          if (rows[0]!.n === 0) return;
          await c.query('SELECT pg_sleep(0.05)');
        }
        throw new Error(`sessions of ${name} still open 15 s after its process ended`);
      });
    },
  };
}

interface Load {
  readonly result: autocannon.Result;
  readonly checked: number;
  readonly wrong: number;
  readonly failures: Map<string, number>;
}

/** Loads the app for `seconds`; each request names a random tenant and item, each answer's slug is checked against it. */
async function loadApp(kind: 'tenant' | 'plain', port: number, seconds: number): Promise<Load> {
  let checked = 0;
  let wrong = 0;
  const failures = new Map<string, number>();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        setupRequest: (request, context) => {
          const t = drawn[Math.floor(Math.random() * drawn.length)]!;
          const item = 1 + Math.floor(Math.random() * ITEMS);
          const slug = slugs[t]!;
          (context as { slug: string }).slug = slug;
          return { ...request, path: `/items/${kind === 'tenant' ? item : t * ITEMS + item}`, headers: { ...request.headers, 'x-tenant-id': slug } };
        },
        // One request at a time per connection: the context is the one the answered request was built with.
        onResponse: (status, body, context) => {
          if (status !== 200) {
            const key = `${status} ${body.slice(0, 160)}`;
            failures.set(key, (failures.get(key) ?? 0) + 1);
            return;
          }
          checked++;
          if ((JSON.parse(body) as { slug: string }).slug !== (context as { slug: string }).slug) wrong++;
        },
      },
    ],
  });
  return { result, checked, wrong, failures };
}

const TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system) a process has used, in seconds; undefined when it is not on this machine or has gone. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // Fields after the command's closing parenthesis: state is the 3rd field, utime the 14th, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** CPU seconds of the app's process and of each server process serving its sessions. */
async function cpuSnapshot(app: App, name: string): Promise<{ app: number | undefined; backends: Map<number, number | undefined> }> {
  const pids = await withPg(adminUrl, async (c) => (await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [name])).rows.map((r) => r.pid));
  return { app: await cpuSeconds(app.child.pid!), backends: new Map(await Promise.all(pids.map(async (pid) => [pid, await cpuSeconds(pid)] as const))) };
}

interface Round {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly maxSeen: number;
  readonly checked: number;
  readonly wrong: number;
  readonly bad: number;
  readonly opened: number;
  readonly evicted: number;
  readonly peak: number;
  /** Of the checkouts, the share that first reset a session another tenant had used. */
  readonly rebound: number;
  /** CPU per measured request, in µs, of the app's process and of its server processes (those still open at the end). */
  readonly appCpuUs: number | undefined;
  readonly serverCpuUs: number | undefined;
}

async function round(kind: 'tenant' | 'plain', budget: number, profileDir: string | undefined): Promise<Round> {
  const name = kind === 'tenant' ? `flotilla runtime bench-${process.pid}` : `bench plain ${process.pid}`;
  const sample = await sampler(name);
  const app = await startApp(kind, budget, name, profileDir);
  try {
    const warm = await loadApp(kind, app.port, WARMUP_S);
    const before = (await app.stats()).connections;
    const cpuBefore = await cpuSnapshot(app, name);
    const run = await loadApp(kind, app.port, DURATION_S);
    const cpuAfter = await cpuSnapshot(app, name);
    const after = (await app.stats()).connections;
    const requests = run.result.requests.total;
    const appCpu = cpuAfter.app !== undefined && cpuBefore.app !== undefined ? cpuAfter.app - cpuBefore.app : undefined;
    let serverCpu: number | undefined = 0;
    for (const [pid, seconds] of cpuAfter.backends)
      serverCpu = seconds === undefined || serverCpu === undefined ? undefined : serverCpu + seconds - (cpuBefore.backends.get(pid) ?? 0);
    const maxSeen = await sample.stop();
    const r = run.result;
    const bad = r.errors + r.timeouts + r.non2xx + warm.result.errors + warm.result.timeouts + warm.result.non2xx;
    for (const [failure, n] of [...warm.failures, ...run.failures]) console.log(`      ${n} × ${failure}`);
    return {
      rps: r.requests.total / DURATION_S,
      p50: r.latency.p50,
      p99: r.latency.p99,
      maxSeen,
      checked: warm.checked + run.checked,
      wrong: warm.wrong + run.wrong,
      bad,
      opened: (after?.opened ?? 0) - (before?.opened ?? 0),
      evicted: (after?.evicted ?? 0) - (before?.evicted ?? 0),
      peak: after?.peak ?? 0,
      rebound: ((after?.rebinds ?? 0) - (before?.rebinds ?? 0)) / Math.max(1, (after?.checkouts ?? 0) - (before?.checkouts ?? 0)),
      appCpuUs: appCpu === undefined ? undefined : (appCpu * 1e6) / requests,
      serverCpuUs: serverCpu === undefined ? undefined : (serverCpu * 1e6) / requests,
    };
  } finally {
    await sample.stop().catch(() => undefined);
    await app.stop();
  }
}

const us = (value: number | undefined) => (value === undefined ? 'n/a' : `${value.toFixed(0)} µs`);
const fixed = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

try {
  const maxConnections = await withPg(adminUrl, async (c) => Number((await c.query<{ max_connections: string }>('SHOW max_connections')).rows[0]!.max_connections));
  const inUse = await withPg(
    adminUrl,
    async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = $1', ['client backend'])).rows[0]!.n,
  );
  // Enough for every database to keep a session while the shared one serves every HTTP connection; and one below the databases' count.
  const roomy = DATABASES + 1 + CONNECTIONS + 8;
  const free = maxConnections - inUse - 10;
  const budgets = (process.env.BENCH_BUDGETS ?? `${roomy},${Math.min(40, DATABASES)}`).split(',').map(Number);
  const fitting = budgets.filter((b) => b <= free);
  for (const b of budgets.filter((b) => b > free)) console.log(`  budget ${b} skipped: the server allows ${maxConnections} connections and ${inUse} are in use`);

  if (await kept()) console.log('  using the tenants an earlier run kept (BENCH_KEEP)');
  else await create();

  console.log(
    `bench:runtime — ${TENANTS} tenants (${SCHEMAS} schema tenants in ${SCHEMA_DB}, ${DATABASES} database tenants), ${ITEMS} items each; ${server.label} (max_connections ${maxConnections}); load average ${loadAverage()}`,
  );
  console.log(`  query plans:\n    ${await plans()}`);
  console.log(
    `  node:http apps in a child process each; autocannon here, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s measured per round, ${ROUNDS} rounds tenant/plain alternating; requests name ${MIX === 'all' ? 'any tenant' : `only ${MIX} tenants`}`,
  );
  const profileDir = process.env.BENCH_PROFILE ? await mkdtemp(join(tmpdir(), 'bench-runtime-profile-')) : undefined;
  const summary: string[] = [];
  for (const budget of fitting) {
    console.log(`  budget ${budget} connections (${DATABASES + 1} databases):`);
    const rounds: Record<'tenant' | 'plain', Round[]> = { tenant: [], plain: [] };
    for (let i = 0; i < ROUNDS; i++) {
      for (const kind of ['tenant', 'plain'] as const) {
        const r = await round(kind, budget, profileDir);
        rounds[kind].push(r);
        const churn =
          kind === 'tenant'
            ? `, sessions opened ${fixed(r.opened / DURATION_S)}/s (evicted ${fixed(r.evicted / DURATION_S)}/s), runtime peak ${r.peak}, ${fixed(100 * r.rebound)} % of checkouts rebound`
            : '';
        console.log(
          `    ${kind.padEnd(6)} ${fixed(r.rps).padStart(6)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, CPU per request: app ${us(r.appCpuUs)}, server ${us(r.serverCpuUs)}; ${r.maxSeen} sessions at most${churn}; ${fixed(r.checked)} answers checked, ${r.wrong} wrong, ${r.bad} errors/non-2xx`,
        );
      }
    }
    const m = (kind: 'tenant' | 'plain', key: 'rps' | 'p50' | 'p99') => median(rounds[kind].map((r) => r[key]));
    const ratio = m('tenant', 'rps') / m('plain', 'rps');
    const mu = (kind: 'tenant' | 'plain', key: 'appCpuUs' | 'serverCpuUs') => {
      const values = rounds[kind].map((r) => r[key]);
      return values.some((v) => v === undefined) ? undefined : median(values as number[]);
    };
    const seen = Math.max(...rounds.tenant.map((r) => r.maxSeen));
    const wrong = [...rounds.tenant, ...rounds.plain].reduce((n, r) => n + r.wrong, 0);
    const bad = [...rounds.tenant, ...rounds.plain].reduce((n, r) => n + r.bad, 0);
    const checked = [...rounds.tenant, ...rounds.plain].reduce((n, r) => n + r.checked, 0);
    summary.push(
      [
        `  budget ${budget}: tenant ${fixed(m('tenant', 'rps'))} req/s (p50 ${m('tenant', 'p50')} ms, p99 ${m('tenant', 'p99')} ms), plain ${fixed(m('plain', 'rps'))} req/s (p50 ${m('plain', 'p50')} ms, p99 ${m('plain', 'p99')} ms)`,
        `    ratio tenant/plain ${ratio.toFixed(2)} (goal ≥ ${GOAL}: ${ratio >= GOAL ? 'met' : 'MISSED'}); runtime sessions at most ${seen} of ${budget} (${seen <= budget ? 'within' : 'OVER'} the budget); sessions opened ${fixed(median(rounds.tenant.map((r) => r.opened)) / DURATION_S)}/s`,
        `    CPU per request: app ${us(mu('tenant', 'appCpuUs'))} against ${us(mu('plain', 'appCpuUs'))}, server ${us(mu('tenant', 'serverCpuUs'))} against ${us(mu('plain', 'serverCpuUs'))}${median(rounds.tenant.map((r) => r.opened)) > 0 ? ' (server processes closed during the round not counted)' : ''}`,
        `    ${fixed(checked)} answers checked, ${wrong} wrong-tenant; ${bad} errors/non-2xx`,
      ].join('\n'),
    );
  }
  console.log(`medians of ${ROUNDS} rounds; load average at the end ${loadAverage()}`);
  console.log(summary.join('\n'));
  if (profileDir) console.log(`  CPU profiles of the apps (tenant/, plain/): ${profileDir}`);
} finally {
  if (!process.env.BENCH_KEEP) await cleanup();
  await server.stop();
}
