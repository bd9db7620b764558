/**
 * bench:lint-large — `flotilla lint` of one 50 MB data migration, as a user runs
 * it (a whole process), in two shapes: a pg_dump --inserts file (one INSERT per
 * row, ~390,000 statements) and multi-row INSERTs of 100 rows each. Baseline in
 * the same run: PostgreSQL's parser alone (libpg-query) over the same file. Each
 * shape is also linted at 5 MB, to show the time grows linearly with the size.
 * Goal: under 10 s for 50 MB, linear.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { loadModule, parseSync } from 'pgsql-parser';
import { median } from './support.js';

const BIN = fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const work = mkdtempSync(join(tmpdir(), 'flotilla-lint-large-'));

type Shape = 'inserts' | 'multirow';

function generate(shape: Shape, megabytes: number): string {
  const dir = join(work, `${shape}-${megabytes}`, 'migrations');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '..', 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations' }));
  const parts = ['CREATE TABLE readings (id bigint PRIMARY KEY, site text NOT NULL, taken_at timestamptz NOT NULL, note text, value numeric);\n'];
  let size = parts[0]!.length;
  let id = 0;
  const row = () => {
    id++;
    return `(${id}, 'site-${id % 97}', '2026-01-01 00:00:00+00', 'reading number ${id} taken on site ${id % 97}', ${(id * 1.37).toFixed(2)})`;
  };
  while (size < megabytes * 1024 * 1024) {
    const text = shape === 'inserts' ? `INSERT INTO public.readings VALUES ${row()};\n` : `INSERT INTO readings VALUES\n${Array.from({ length: 100 }, row).join(',\n')};\n`;
    parts.push(text);
    size += text.length;
  }
  writeFileSync(join(dir, '0001_readings.sql'), parts.join(''));
  return join(dir, '..');
}

/** `flotilla lint` in its own process; its wall time and peak memory. */
function lint(project: string): { ms: number; mb: number; statements: string } {
  const started = performance.now();
  // GNU time, where there is one, reports the peak memory.
  const timed = existsSync('/usr/bin/time');
  const [command, args] = timed ? ['/usr/bin/time', ['-f', '%M', process.execPath, BIN, 'lint']] : [process.execPath, [BIN, 'lint']];
  const run = spawnSync(command, args, { cwd: project, encoding: 'utf8', env: { ...process.env, FLOTILLA_DATABASE_URL: '' } });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`flotilla lint failed: ${run.stdout}${run.stderr}`);
  const kb = timed ? Number(run.stderr.trim().split('\n').pop()) : Number.NaN;
  return { ms, mb: kb / 1024, statements: /(\d+) statements/.exec(run.stdout)?.[1] ?? '?' };
}

/** The parser alone over the same text, in 1 MB pieces (it takes no more at once). */
function parserAlone(project: string): number {
  const sql = readFileSync(join(project, 'migrations', '0001_readings.sql'), 'utf8');
  const started = performance.now();
  for (let at = 0; at < sql.length; ) {
    const cut = sql.indexOf(';\n', at + (1 << 20));
    const end = cut === -1 ? sql.length : cut + 1;
    parseSync(sql.slice(at, end));
    at = end;
  }
  return performance.now() - started;
}

await loadModule();
console.log(`bench:lint-large — ${ROUNDS} rounds each, medians`);
try {
  for (const shape of ['inserts', 'multirow'] as const) {
    const small = generate(shape, 5);
    const large = generate(shape, 50);
    const s = Array.from({ length: ROUNDS }, () => lint(small));
    const l = Array.from({ length: ROUNDS }, () => lint(large));
    const parser = median(Array.from({ length: ROUNDS }, () => parserAlone(large)));
    const lm = median(l.map((r) => r.ms));
    const sm = median(s.map((r) => r.ms));
    console.log(`  ${shape} (${l[0]!.statements} statements in 50 MB):`);
    console.log(`    flotilla lint, 50 MB: ${(lm / 1000).toFixed(2)} s, peak ${Math.round(median(l.map((r) => r.mb)))} MB (goal < 10 s)`);
    console.log(
      `    flotilla lint,  5 MB: ${(sm / 1000).toFixed(2)} s; 50 MB / 5 MB = ${(lm / sm).toFixed(1)} (10 would be linear with nothing fixed; each run includes the process start)`,
    );
    console.log(`    the parser alone, 50 MB: ${(parser / 1000).toFixed(2)} s; flotilla lint / parser = ${(lm / parser).toFixed(2)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
