/**
 * bench:fleet-schemas — 2,000 schema tenants in one database upgraded by 3
 * migrations through one `flotilla migrate --all` runner process: its time and
 * peak memory (sampled from /proc), and `flotilla status` over 2,000 tenants.
 * Goals: the runner under 300 MB; status under 2 s.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { Flotilla } from '../src/flotilla.js';
import { withClient } from '../src/postgres/connect.js';
import { dropDatabase } from '../src/postgres/provision.js';
import { quoteIdent } from '../src/core/sql/quote.js';
import { databaseOf, withDatabase } from '../src/postgres/server-url.js';
import { benchServer } from './support.js';

const TENANTS = Number(process.env.BENCH_TENANTS ?? 2000);
const BIN = fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));
const server = await benchServer();
const admin = databaseOf(server.url) ?? 'postgres';
const dir = await mkdtemp(join(tmpdir(), 'bench-schemas-'));
await mkdir(join(dir, 'migrations'));
await writeFile(
  join(dir, 'migrations', '0001_base.sql'),
  'CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);\nCREATE TABLE entries (id serial PRIMARY KEY, account_id int REFERENCES accounts (id), amount int NOT NULL);',
);
const controlUrl = withDatabase(server.url, 'bench_schemas_control');
await writeFile(
  join(dir, 'flotilla.config.json'),
  JSON.stringify({ migrationsDir: 'migrations', tenants: { defaultKind: 'schema', schemaDatabase: 'bench_schemas_tenants' }, backup: { policy: 'never' } }),
);
const cleanup = async () => {
  // Each schema tenant's role belongs to the server: found in the registry's claims, dropped after the databases.
  const roles = await withClient(server.url, 'bench_schemas_control', async (c) =>
    (await c.query<{ name: string }>(`SELECT name FROM flotilla.storage WHERE kind = 'role'`)).rows.map((r) => r.name),
  ).catch(() => [] as string[]);
  await withClient(server.url, admin, async (c) => {
    for (const db of ['bench_schemas_control', 'bench_schemas_tenants']) await dropDatabase(c, db);
    for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  });
};
await cleanup();
const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: controlUrl } });
const flotilla = await Flotilla.open({ config });
try {
  let started = performance.now();
  for (let i = 1; i <= TENANTS; i++) await flotilla.createTenant({ slug: `s${String(i).padStart(4, '0')}` });
  console.log(`bench:fleet-schemas — ${TENANTS} schema tenants in one database, ${server.label} (created in ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  await writeFile(join(dir, 'migrations', '0002_currency.sql'), "ALTER TABLE accounts ADD COLUMN currency text NOT NULL DEFAULT 'EUR';");
  await writeFile(join(dir, 'migrations', '0003_entries_index.sql'), 'CREATE INDEX entries_account_idx ON entries (account_id);');
  await writeFile(join(dir, 'migrations', '0004_notes.sql'), 'CREATE TABLE notes (id serial PRIMARY KEY, body text);');

  started = performance.now();
  const child = spawn(process.execPath, [BIN, 'migrate', '--all', '--json', '--concurrency', '8'], { cwd: dir, env: { ...process.env, FLOTILLA_DATABASE_URL: controlUrl } });
  let peak = 0;
  const sampler = setInterval(async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    peak = Math.max(peak, kb);
  }, 50);
  let last = '';
  child.stdout.on('data', (chunk: Buffer) => (last = chunk.toString().trim().split('\n').pop() ?? last));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(sampler);
  const elapsed = performance.now() - started;
  if (code !== 0) throw new Error(`migrate exited ${code}: ${last}`);
  console.log(`  rollout of 3 migrations over ${TENANTS} tenants (8 at a time): ${(elapsed / 1000).toFixed(1)} s, ${(TENANTS / (elapsed / 1000)).toFixed(0)} tenants/s; ${last}`);
  console.log(`  runner process peak memory: ${(peak / 1024).toFixed(0)} MB (goal < 300 MB)`);

  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const states = await flotilla.status();
    times.push(performance.now() - t);
    if (states.length !== TENANTS || states.some((s) => s.pending !== 0)) throw new Error('status disagrees');
  }
  console.log(`  flotilla status over ${TENANTS} tenants: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s (goal < 2 s)`);
} finally {
  await flotilla.close();
  await cleanup();
  await server.stop();
}
