/**
 * bench:verify — the cost of verification on a tenant holding 1,051,000 rows
 * (events 1,000,000, accounts 50,000, settings 1,000). Each round copies a
 * prepared database (CREATE DATABASE … TEMPLATE) and upgrades the copy, with
 * and without verification, alternating:
 *   (a) a migration that touches only the small settings table — goal: verification adds < 20 ms;
 *   (b) a type change that rewrites the 1,000,000-row events table — goal: verification adds ≤ 20 %.
 */
import { loadMigrationSet } from '../src/core/migration-set.js';
import { withClient } from '../src/postgres/connect.js';
import { migrateTarget } from '../src/engine/migrate-target.js';
import { dropDatabase } from '../src/postgres/provision.js';
import { databaseOf } from '../src/postgres/server-url.js';
import { quoteIdent } from '../src/core/sql/quote.js';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchServer, median } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const server = await benchServer();
const admin = databaseOf(server.url) ?? 'postgres';
const BASE = 'bench_verify_base';
const COPY = 'bench_verify_copy';

const dir = await mkdtemp(join(tmpdir(), 'bench-verify-'));
const files = {
  '0001_schema.sql': `CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, kind int NOT NULL, payload text, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL, balance int NOT NULL);
CREATE TABLE settings (id serial PRIMARY KEY, key text NOT NULL, value text);`,
};
const small = { '0002_settings_note.sql': "ALTER TABLE settings ADD COLUMN note text;\nUPDATE settings SET note = 'reviewed' WHERE id <= 10;" };
const rewrite = { '0002_events_kind_bigint.sql': 'ALTER TABLE events ALTER COLUMN kind TYPE bigint;' };

async function writeDir(name: string, extra: Record<string, string>): Promise<string> {
  const path = join(dir, name);
  await import('node:fs/promises').then((fs) => fs.mkdir(path, { recursive: true }));
  for (const [file, sql] of Object.entries({ ...files, ...extra })) await writeFile(join(path, file), sql);
  return path;
}

async function prepare(): Promise<void> {
  await withClient(server.url, admin, async (c) => {
    await dropDatabase(c, BASE);
    await c.query(`CREATE DATABASE ${quoteIdent(BASE)}`);
  });
  const base = await loadMigrationSet(await writeDir('base', {}));
  await migrateTarget({ tenant: 'bench', serverUrl: server.url, database: BASE, schema: 'public' }, base);
  await withClient(server.url, BASE, async (c) => {
    await c.query(`INSERT INTO events (account_id, kind, payload) SELECT i % 50000, i % 7, md5(i::text) FROM generate_series(1, 1000000) i`);
    await c.query(`INSERT INTO accounts (name, balance) SELECT 'acct ' || i, i FROM generate_series(1, 50000) i`);
    await c.query(`INSERT INTO settings (key, value) SELECT 'k' || i, 'v' || i FROM generate_series(1, 1000) i`);
    await c.query('VACUUM ANALYZE');
  });
}

async function round(migrations: Record<string, string>, verify: boolean): Promise<number> {
  await withClient(server.url, admin, async (c) => {
    await dropDatabase(c, COPY);
    await c.query(`CREATE DATABASE ${quoteIdent(COPY)} TEMPLATE ${quoteIdent(BASE)}`);
  });
  const set = await loadMigrationSet(await writeDir(Object.keys(migrations)[0]!, migrations));
  const started = performance.now();
  const result = await migrateTarget({ tenant: 'bench', serverUrl: server.url, database: COPY, schema: 'public' }, set, { verify: { enabled: verify, checksumMaxRows: 100_000 } });
  const elapsed = performance.now() - started;
  if (result.status !== 'succeeded') throw new Error(result.status);
  return elapsed;
}

async function compare(label: string, migrations: Record<string, string>): Promise<{ on: number; off: number }> {
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    off.push(await round(migrations, false));
    on.push(await round(migrations, true));
  }
  const result = { on: median(on), off: median(off) };
  console.log(
    `  ${label}: without ${result.off.toFixed(0)} ms, with ${result.on.toFixed(0)} ms  [with: ${on.map((v) => v.toFixed(0)).join(', ')}; without: ${off.map((v) => v.toFixed(0)).join(', ')}]`,
  );
  return result;
}

try {
  await prepare();
  console.log(`bench:verify — 1,051,000 rows (events 1,000,000 / accounts 50,000 / settings 1,000), ${ROUNDS} rounds each, ${server.label}`);
  const a = await compare('(a) touch the 1,000-row settings table', small);
  console.log(`      verification adds ${(a.on - a.off).toFixed(1)} ms (goal < 20 ms)`);
  const b = await compare('(b) type change rewriting the 1,000,000-row events table', rewrite);
  console.log(`      ratio with/without = ${(b.on / b.off).toFixed(2)} (goal ≤ 1.20)`);
} finally {
  await withClient(server.url, admin, async (c) => {
    await dropDatabase(c, COPY);
    await dropDatabase(c, BASE);
  });
  await server.stop();
}
