/**
 * bench:fleet-schemas — BENCH_TENANTS (default 10,000) schema tenants spread over
 * BENCH_DATABASES shared databases (default: one per 2,500 tenants), created
 * through the library, BENCH_CREATE_CONCURRENCY (default 8) at a time. Then,
 * through the CLI in a child process (its peak memory read from /proc):
 *   (a) `flotilla migrate --all` when every tenant is already up to date (goal < 10 s);
 *   (b) `flotilla migrate --all` with 3 new migrations: time and runner peak memory (goal < 300 MB);
 *   (c) `flotilla status --json` over every tenant (goal < 2 s).
 * The library is used only to open, create tenants and close; everything else goes through the CLI.
 * BENCH_KEEP=1 leaves the databases and roles in place (to profile the CLI against them); the next run drops them.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Flotilla, loadConfig } from '../src/index.js';
import type { CreateTenantInput } from '../src/index.js';
import { adminDatabase, withDatabase } from '../src/postgres/server-url.js';
import { benchServer, dropBenchStorage, loadAverage } from './support.js';

const TENANTS = Number(process.env.BENCH_TENANTS ?? 10_000);
const DATABASES = Number(process.env.BENCH_DATABASES ?? Math.max(1, Math.ceil(TENANTS / 2500)));
const CREATE_CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 8);
const ROLLOUT_CONCURRENCY = 8;
const GOALS = { upToDateS: 10, peakMb: 300, statusS: 2 };
const BIN = fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url));
const CONTROL = 'bench_schemas_control';
const tenantDatabase = (d: number) => (d === 0 ? 'bench_schemas_tenants' : `bench_schemas_tenants_${d + 1}`);
const databases = Array.from({ length: DATABASES }, (_, d) => tenantDatabase(d));
/** The one line to change when the facade's methods move (`flotilla.tenants.create(input)`). */
const createTenant = (flotilla: Flotilla, input: CreateTenantInput) => flotilla.tenants.create(input);

const server = await benchServer();
const urlOf = (database: string) => withDatabase(server.url, database);
const adminUrl = urlOf(adminDatabase(server.url));
const controlUrl = urlOf(CONTROL);
const seconds = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
const ofGoal = (value: number, goal: number, unit: string) => `goal < ${goal} ${unit}: ${(value / goal).toFixed(2)}× the goal, ${value <= goal ? 'met' : 'MISSED'}`;

/** The CLI runs the compiled code: say so when src/ changed after the last build. */
async function warnIfDistStale(): Promise<void> {
  const built = (await stat(join(REPO, 'dist/cli/main.js')).catch(() => undefined))?.mtimeMs ?? 0;
  const files = (await readdir(join(REPO, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts') || f.endsWith('.sql'));
  const newest = Math.max(...(await Promise.all(files.map(async (f) => (await stat(join(REPO, 'src', f))).mtimeMs))));
  if (newest > built) console.log('  warning: src/ changed after dist/ was built; the CLI child runs dist/ (npm run build)');
}

/** Runs the CLI in a child process: wall time, exit code, peak resident memory (VmHWM, sampled from /proc), stdout lines. */
async function cli(args: string[], keep: 'ends' | 'all'): Promise<{ ms: number; code: number | null; peakKb: number; first: string; last: string; stdout: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, FLOTILLA_DATABASE_URL: controlUrl } });
  let peakKb = 0;
  const sample = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
  };
  const sampler = setInterval(sample, 25);
  let first = '';
  let last = '';
  const all: string[] = [];
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (text) => {
    if (first === '') first = text;
    last = text;
    if (keep === 'all') all.push(text);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(sampler);
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`flotilla ${args.join(' ')} exited ${code}: ${last} ${stderr.join('').slice(-2000)}`);
  return { ms, code, peakKb, first, last, stdout: all.join('\n') };
}

async function cleanup(): Promise<void> {
  // Every shared database of this bench, also those of an earlier run with more of them.
  await dropBenchStorage(adminUrl, controlUrl, async (c) => {
    const found = (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname ~ '^bench_schemas_tenants(_[0-9]+)?$'`)).rows.map((r) => r.datname);
    return [CONTROL, ...new Set([...databases, ...found])];
  });
}

const dir = await mkdtemp(join(tmpdir(), 'bench-schemas-'));
await mkdir(join(dir, 'migrations'));
await writeFile(
  join(dir, 'migrations', '0001_base.sql'),
  'CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);\nCREATE TABLE entries (id serial PRIMARY KEY, account_id int REFERENCES accounts (id), amount int NOT NULL);',
);
const configFile = (database: string) => JSON.stringify({ migrationsDir: 'migrations', tenants: { defaultKind: 'schema', schemaDatabase: database }, backup: { policy: 'never' } });
// The CLI's config names the first database; a tenant's database is the one the registry records for it.
await writeFile(join(dir, 'flotilla.config.json'), configFile(databases[0]!));
await cleanup();
await warnIfDistStale();

/**
 * A schema tenant's database is `tenants.schemaDatabase` of the config that creates it: one Flotilla per
 * worker, each opened with its worker's database, all on the same control database. A worker of its own
 * per instance, since the registry's pool holds 4 connections.
 */
const workers = Math.max(CREATE_CONCURRENCY, DATABASES);
const instances: Flotilla[] = [];
try {
  for (let w = 0; w < workers; w++) {
    const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: controlUrl }, overrides: JSON.parse(configFile(tenantDatabase(w % DATABASES))) });
    instances.push(await Flotilla.open({ config }));
  }
  const width = String(TENANTS).length;
  // Tenant s<i> goes to database (i - 1) mod DATABASES; each database's queue is drained by its own workers.
  const queues = databases.map((_, d) => Array.from({ length: Math.ceil((TENANTS - d) / DATABASES) }, (_, k) => `s${String(d + 1 + k * DATABASES).padStart(width, '0')}`));
  let created = 0;
  const started = performance.now();
  let reported = started;
  const note = () => {
    created++;
    if (created % 1000 === 0 || performance.now() - reported > 30_000) {
      reported = performance.now();
      console.log(`  … ${created} created, ${seconds(reported - started)} s, ${(created / ((reported - started) / 1000)).toFixed(1)} tenants/s`);
    }
  };
  // The first tenant of each database alone: it makes the shared database.
  for (const [d, queue] of queues.entries()) {
    const slug = queue.shift();
    if (slug) await createTenant(instances[d]!, { slug });
    if (slug) note();
  }
  await Promise.all(
    instances.map(async (flotilla, w) => {
      const queue = queues[w % DATABASES]!;
      for (let slug = queue.shift(); slug; slug = queue.shift()) {
        await createTenant(flotilla, { slug });
        note();
      }
    }),
  );
  const createMs = performance.now() - started;
  await Promise.all(instances.splice(0).map((f) => f.close()));
  console.log(
    `bench:fleet-schemas — ${TENANTS} schema tenants in ${DATABASES} shared database${DATABASES > 1 ? 's' : ''} (${databases.join(', ')}), ${server.label}, CLI child with --concurrency ${ROLLOUT_CONCURRENCY}; load average ${loadAverage()}`,
  );
  console.log(`  created through createTenant, ${workers} at a time (one Flotilla each): ${seconds(createMs)} s, ${(TENANTS / (createMs / 1000)).toFixed(1)} tenants/s`);

  const startup = await cli(['--help'], 'ends');
  console.log(`  CLI start-up alone (flotilla --help): ${seconds(startup.ms)} s`);

  const upToDate = await cli(['migrate', '--all', '--json', '--concurrency', String(ROLLOUT_CONCURRENCY)], 'ends');
  console.log(
    `  (a) rollout with every tenant up to date: ${seconds(upToDate.ms)} s, peak ${(upToDate.peakKb / 1024).toFixed(0)} MB (${ofGoal(upToDate.ms / 1000, GOALS.upToDateS, 's')})`,
  );
  console.log(`      ${upToDate.first}`);
  console.log(`      ${upToDate.last}`);

  await writeFile(join(dir, 'migrations', '0002_currency.sql'), "ALTER TABLE accounts ADD COLUMN currency text NOT NULL DEFAULT 'EUR';");
  await writeFile(join(dir, 'migrations', '0003_entries_index.sql'), 'CREATE INDEX entries_account_idx ON entries (account_id);');
  await writeFile(join(dir, 'migrations', '0004_notes.sql'), 'CREATE TABLE notes (id serial PRIMARY KEY, body text);');
  const rollout = await cli(['migrate', '--all', '--json', '--concurrency', String(ROLLOUT_CONCURRENCY)], 'ends');
  console.log(`  (b) rollout of 3 migrations over ${TENANTS} tenants: ${seconds(rollout.ms)} s, ${(TENANTS / (rollout.ms / 1000)).toFixed(0)} tenants/s`);
  console.log(`      ${rollout.last}`);
  console.log(`      runner process peak memory: ${(rollout.peakKb / 1024).toFixed(0)} MB (${ofGoal(rollout.peakKb / 1024, GOALS.peakMb, 'MB')})`);

  const times: number[] = [];
  let statusPeakKb = 0;
  for (let i = 0; i < 3; i++) {
    const run = await cli(['status', '--json'], 'all');
    times.push(run.ms);
    statusPeakKb = Math.max(statusPeakKb, run.peakKb);
    const states = JSON.parse(run.stdout) as { pending: number; problems: unknown[] }[];
    if (states.length !== TENANTS || states.some((s) => s.pending !== 0 || s.problems.length > 0)) throw new Error('status disagrees');
  }
  const best = Math.min(...times);
  console.log(
    `  (c) flotilla status --json over ${TENANTS} tenants: ${times.map(seconds).join(', ')} s, peak ${(statusPeakKb / 1024).toFixed(0)} MB (best ${ofGoal(best / 1000, GOALS.statusS, 's')})`,
  );
} finally {
  console.log(`  load average at the end: ${loadAverage()}`);
  await Promise.all(instances.map((f) => f.close()));
  if (!process.env.BENCH_KEEP) await cleanup();
  await server.stop();
}
