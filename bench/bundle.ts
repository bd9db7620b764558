/**
 * bench:bundle — `bundle build` and `bundle verify` of the trigger.dev history
 * (820 migrations with flotilla.sum), each as a CLI process (what a vendor and a
 * site run) and in process, against standard tools doing less in the same run:
 * `tar -czf` of the same folder (no parse, no hashes, no signature), and
 * `tar -xzf` then `sha256sum` of every file (no signature, no manifest, no
 * path checks). Goal: verify under 1 s.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { readMigrationDir } from '../src/core/migration-file.js';
import { renderSumFile } from '../src/core/sum-file.js';
import { buildBundle } from '../src/services/bundle-build.js';
import { generateKeyFiles, verifyBundleFile } from '../src/services/bundle-files.js';
import { corpusDir, median } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const BIN = fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-bundle-'));
try {
  cpSync(corpusDir(), join(dir, 'migrations'), { recursive: true });
  writeFileSync(join(dir, 'migrations', 'flotilla.sum'), renderSumFile(await readMigrationDir(join(dir, 'migrations'))));
  writeFileSync(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', bundles: { product: 'trigger' } }));
  const keys = await generateKeyFiles(join(dir, 'keys'));
  const config = await loadConfig({ cwd: dir, env: {} });
  const bundle = join(dir, 'release.flotilla.tgz');
  const created = '2026-11-01T00:00:00Z';

  const timed = (fn: () => void): number => {
    const started = performance.now();
    fn();
    return performance.now() - started;
  };
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  };
  const cli = (args: string[]) => run(process.execPath, [BIN, ...args]);
  const samples = { buildCli: [] as number[], buildLib: [] as number[], tar: [] as number[], verifyCli: [] as number[], verifyLib: [] as number[], untarHash: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    samples.buildCli.push(timed(() => cli(['bundle', 'build', '--version', '1.0.0', '--key', keys.privateKey, '--out', bundle, '--created', created])));
    let started = performance.now();
    await buildBundle(config, { version: '1.0.0', key: keys.privateKey, out: join(dir, 'lib.flotilla.tgz'), createdAt: new Date(created), cwd: dir });
    samples.buildLib.push(performance.now() - started);
    samples.tar.push(timed(() => run('tar', ['-czf', join(dir, 'plain.tgz'), '-C', dir, 'migrations'])));
    samples.verifyCli.push(timed(() => cli(['bundle', 'verify', bundle, '--pubkey', keys.publicKey])));
    started = performance.now();
    await verifyBundleFile(bundle, keys.publicKey, config);
    samples.verifyLib.push(performance.now() - started);
    const out = join(dir, `untar-${i}`);
    mkdirSync(out);
    samples.untarHash.push(timed(() => run('sh', ['-c', `tar -xzf "${bundle}" -C "${out}" && find "${out}" -type f -exec sha256sum {} + > /dev/null`])));
    rmSync(out, { recursive: true });
  }
  const files = readdirSync(join(dir, 'migrations')).length;
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<keyof typeof samples, number>;
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`bench:bundle — the trigger.dev history (${files} entries, 820 migrations), ${ROUNDS} rounds, medians`);
  console.log(`  bundle: ${(statSync(bundle).size / 1024).toFixed(0)} KiB`);
  console.log(`  build,  CLI process:        ${s(m.buildCli)}   (${(m.buildCli / m.tar).toFixed(2)}x tar -czf of the folder, ${s(m.tar)})`);
  console.log(`  build,  in process:         ${s(m.buildLib)}`);
  console.log(
    `  verify, CLI process:        ${s(m.verifyCli)}   (${(m.verifyCli / m.untarHash).toFixed(2)}x tar -xzf + sha256sum, ${s(m.untarHash)}) goal < 1 s: ${m.verifyCli < 1000 ? 'met' : 'MISSED'}`,
  );
  console.log(`  verify, in process:         ${s(m.verifyLib)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
