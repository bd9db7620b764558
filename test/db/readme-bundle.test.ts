import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile } from '../../src/core/sum-file.js';
import { REPO, readmeExample } from '../support/readme.js';

const BIN = join(REPO, 'bin/flotilla.js');

/**
 * The README's bundle example, run as written on a fresh machine: the vendor's
 * project builds the release; the site (a folder inside it, as in the example)
 * runs on its own embedded PostgreSQL, no database URL anywhere.
 */
let dir: string;
const env = { ...process.env, FLOTILLA_DATABASE_URL: '', FLOTILLA_MIGRATIONS_DIR: '' };
const cli = (args: string[], cwd: string) => spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-readme-bundle-'));
  // As root, the embedded server runs as the `postgres` user, which must be able to enter the directory.
  await chmod(dir, 0o755);
  const migrations = { '0001_contracts.sql': 'CREATE TABLE contracts (id bigint PRIMARY KEY, customer text NOT NULL);\n' };
  for (const project of [dir, join(dir, 'site')]) {
    await mkdir(join(project, 'migrations'), { recursive: true });
    for (const [name, sql] of Object.entries(migrations)) await writeFile(join(project, 'migrations', name), sql);
    await writeFile(join(project, 'migrations', 'flotilla.sum'), renderSumFile(await readMigrationDir(join(project, 'migrations'))));
  }
  // Release 1.1.0 adds a column; the site runs 1.0.0 (the first migration) with one tenant holding rows.
  await writeFile(join(dir, 'migrations', '0002_contracts_signed_on.sql'), 'ALTER TABLE contracts ADD COLUMN signed_on date;\n');
  await writeFile(join(dir, 'migrations', 'flotilla.sum'), renderSumFile(await readMigrationDir(join(dir, 'migrations'))));
  await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', bundles: { product: 'insure' } }));
  await mkdir(join(dir, 'app'));
  await writeFile(join(dir, 'app', 'server.js'), "console.log('insure 1.1.0');\n");
  await writeFile(join(dir, 'site', 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', bundles: { product: 'insure', appDir: 'app' } }));
  const created = cli(['tenant', 'create', 'hq'], join(dir, 'site'));
  expect(created.stderr).toBe('');
}, 120_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the README bundle example', () => {
  it('builds, verifies, applies and lists a release as written', async () => {
    const script = `set -euo pipefail\nnpx() { shift; node ${JSON.stringify(BIN)} "$@"; }\n${readmeExample('bundle')}`;
    const run = spawnSync('bash', ['-c', script], { cwd: dir, env, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('The bundle is genuine: insure 1.1.0');
    expect(run.stdout).toMatch(/Result: +INSTALLED \(1 of 1 tenants at the new version\)/);
    expect(run.stdout).toMatch(/hq +upgraded +0001 +0002/);
    expect(run.stdout).toMatch(/│ insure +│ 1\.1\.0 +│ installed/);
    // The application and the release's migrations were installed at the site.
    expect(await readFile(join(dir, 'site', 'app', 'server.js'), 'utf8')).toContain('insure 1.1.0');
    expect((await readdir(join(dir, 'site', 'migrations'))).sort()).toEqual(['0001_contracts.sql', '0002_contracts_signed_on.sql', 'flotilla.sum']);
    const reports = await readdir(join(dir, 'site', '.flotilla', 'reports'));
    expect(reports.filter((f) => f.endsWith('.json')).length).toBe(1);
    expect(reports.filter((f) => f.endsWith('.txt')).length).toBe(1);
    // The site's own commands agree: the tenant is at the release's version, nothing pending.
    const status = cli(['status', '--json'], join(dir, 'site'));
    expect(JSON.parse(status.stdout)[0]).toMatchObject({ slug: 'hq', version: '0002', pending: 0 });
  }, 180_000);

  it('applies the next release on the embedded server in a network namespace with only loopback (a machine with no network)', async () => {
    await writeFile(join(dir, 'migrations', '0003_contracts_index.sql'), 'CREATE INDEX contracts_customer ON contracts (customer);\n');
    await writeFile(join(dir, 'migrations', 'flotilla.sum'), renderSumFile(await readMigrationDir(join(dir, 'migrations'))));
    const built = cli(['bundle', 'build', '--version', '1.2.0', '--key', 'keys/flotilla-signing.key', '--out', 'insure-1.2.0.flotilla.tgz'], dir);
    expect(built.status).toBe(0);
    // Inside: loopback only (the embedded server listens there); anything beyond is unreachable, as the first line proves.
    const offline = [
      'ip link set lo up',
      `node -e "require('node:net').connect(443, '1.1.1.1').on('error', (e) => { console.log('outside ' + e.code); process.exit(0); })"`,
      `exec node ${JSON.stringify(BIN)} bundle apply ../insure-1.2.0.flotilla.tgz --pubkey ../keys/flotilla-signing.pub --json`,
    ].join(' && ');
    const run = spawnSync('unshare', ['-n', 'sh', '-c', offline], { cwd: join(dir, 'site'), env, encoding: 'utf8' });
    expect(run.error, 'unshare -n must run here (as root): it proves the apply makes no network call').toBeUndefined();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^outside ENETUNREACH\n/);
    const report = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
    expect(report).toMatchObject({ outcome: 'installed', version: '1.2.0', previousVersion: '1.1.0' });
    expect(report.tenants).toEqual([expect.objectContaining({ tenant: 'hq', status: 'upgraded', versionBefore: '0002', versionAfter: '0003', rowsIntact: true })]);
  }, 180_000);
});
