/**
 * bench:apply — the whole trigger.dev corpus (820 migrations) applied to a fresh
 * database (a) through Flotilla (parse, plan, lock, one transaction, history,
 * index builds after it) and (b) through one `psql -f` session of the same files
 * concatenated, with no bookkeeping. Alternating rounds; medians; ratio a/b.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMigrationSet } from '../src/core/migration-set.js';
import { withClient } from '../src/postgres/connect.js';
import { migrateTarget } from '../src/engine/migrate-target.js';
import { createDatabase, dropDatabase } from '../src/postgres/provision.js';
import { databaseOf, withDatabase } from '../src/postgres/server-url.js';
import { benchServer, corpusDir, median, requireTool } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
requireTool('psql');
const dir = corpusDir();
const server = await benchServer();
const admin = databaseOf(server.url) ?? 'postgres';

const files = (await loadMigrationSet(dir)).migrations.map((m) => join(dir, m.path));
const concatenated = join(tmpdir(), 'flotilla-bench-corpus.sql');
writeFileSync(concatenated, files.map((f) => readFileSync(f, 'utf8')).join('\n;\n'));

async function fresh(name: string): Promise<void> {
  await withClient(server.url, admin, async (c) => {
    await dropDatabase(c, name);
    await createDatabase(c, name);
  });
}

async function flotillaRound(): Promise<number> {
  await fresh('bench_apply_flotilla');
  const started = performance.now();
  const set = await loadMigrationSet(dir);
  const result = await migrateTarget({ tenant: 'bench', serverUrl: server.url, database: 'bench_apply_flotilla', schema: 'public' }, set);
  const elapsed = performance.now() - started;
  if (result.status !== 'succeeded' || result.migrations.length !== 820) throw new Error(`Flotilla applied ${result.migrations.length} migrations`);
  return elapsed;
}

async function psqlRound(): Promise<number> {
  await fresh('bench_apply_psql');
  const started = performance.now();
  const run = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', withDatabase(server.url, 'bench_apply_psql'), '-f', concatenated], { encoding: 'utf8' });
  const elapsed = performance.now() - started;
  if (run.status !== 0) throw new Error(`psql failed: ${run.stderr}`);
  return elapsed;
}

const flotilla: number[] = [];
const psql: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    flotilla.push(await flotillaRound());
    psql.push(await psqlRound());
  }
} finally {
  await withClient(server.url, admin, async (c) => {
    await dropDatabase(c, 'bench_apply_flotilla');
    await dropDatabase(c, 'bench_apply_psql');
  });
  await server.stop();
}
const a = median(flotilla);
const b = median(psql);
console.log(`bench:apply — 820 migrations, ${files.length} files, ${ROUNDS} rounds each, ${server.label}`);
console.log(`  (a) Flotilla (parse + plan + lock + apply + history): median ${(a / 1000).toFixed(2)} s  [${flotilla.map((v) => (v / 1000).toFixed(2)).join(', ')}]`);
console.log(`  (b) psql -f, one session, no bookkeeping:             median ${(b / 1000).toFixed(2)} s  [${psql.map((v) => (v / 1000).toFixed(2)).join(', ')}]`);
console.log(`  ratio a/b = ${(a / b).toFixed(2)} (goal ≤ 1.20)`);
