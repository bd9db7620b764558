/**
 * bench:startup — `flotilla --version` and `flotilla --help` as whole processes,
 * against plain `node -e ""` in the same run (Node's own start), alternating
 * runs so a drifting machine affects both. BENCH_CLI=<path to bin/flotilla.js>
 * times another build (an older checkout) the same way.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const BIN = process.env.BENCH_CLI ?? fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));

function time(args: string[]): number {
  const started = performance.now();
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' });
  // An older build may have no --version (it prints its usage and exits 2): its start is timed all the same.
  if (run.status !== 0 && !process.env.BENCH_CLI) throw new Error(`${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  return performance.now() - started;
}

const node: number[] = [];
const version: number[] = [];
const help: number[] = [];
time([BIN, '--version']);
for (let i = 0; i < ROUNDS; i++) {
  node.push(time(['-e', '']));
  version.push(time([BIN, '--version']));
  help.push(time([BIN, '--help']));
}
const base = median(node);
console.log(`bench:startup — ${BIN}, ${ROUNDS} rounds, medians`);
console.log(`  node -e "":          ${base.toFixed(0)} ms`);
console.log(`  flotilla --version:  ${median(version).toFixed(0)} ms (${(median(version) / base).toFixed(2)}x node's own start)`);
console.log(`  flotilla --help:     ${median(help).toFixed(0)} ms (${(median(help) / base).toFixed(2)}x)`);
