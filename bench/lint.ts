/**
 * bench:lint — lint the whole trigger.dev history (820 files): read, parse and lint,
 * against read and parse alone, in the same run. Goal: under 5 s in all.
 */
import { loadMigrationSet } from '../src/core/migration-set.js';
import { lintMigrations } from '../src/core/lint/lint.js';
import { corpusDir, median } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const dir = corpusDir();
const parseOnly: number[] = [];
const full: number[] = [];
let counts: Record<string, number> = {};
for (let i = 0; i < ROUNDS; i++) {
  let started = performance.now();
  await loadMigrationSet(dir);
  parseOnly.push(performance.now() - started);
  started = performance.now();
  const set = await loadMigrationSet(dir);
  const report = lintMigrations(set.migrations, { schemaTenants: true });
  full.push(performance.now() - started);
  counts = {};
  for (const f of report.findings) counts[f.code] = (counts[f.code] ?? 0) + 1;
}
const a = median(full);
const b = median(parseOnly);
console.log(`bench:lint — 820 files, ${ROUNDS} rounds`);
console.log(`  read + parse + lint: median ${(a / 1000).toFixed(2)} s (goal < 5 s)`);
console.log(`  read + parse alone:  median ${(b / 1000).toFixed(2)} s; lint adds ${(a / b).toFixed(2)}x`);
console.log(
  `  findings per code: ${Object.entries(counts)
    .sort()
    .map(([code, n]) => `${code} ${n}`)
    .join(', ')}`,
);
