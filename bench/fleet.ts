/**
 * bench:fleet — 100 database tenants at migration 800 of the trigger.dev corpus
 * (cloned from a template database), upgraded to 820, measured in the same run:
 *   (a) Flotilla: a rollout, 4 at a time, with every safety feature on: lint,
 *       verification, audit, and backups by the default policy (risky); also 8 at
 *       a time, and with backup.policy always (a dump of every tenant first);
 *   (b) the floor: the SQL of migrations 801–820 applied by `psql -f`, 4 at a time (xargs -P 4);
 *   (c) the habit this replaces: one `postgrator` process per tenant, one after another.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { loadMigrationSet } from '../src/core/migration-set.js';
import { quoteIdent } from '../src/core/sql/quote.js';
import { Flotilla } from '../src/flotilla.js';
import { withClient } from '../src/postgres/connect.js';
import { dropDatabase } from '../src/postgres/provision.js';
import { databaseOf, withDatabase } from '../src/postgres/server-url.js';
import { activateTenantRow, claimStorage, insertTenantRow } from '../test/support/control.js';
import { benchServer, corpusDir, requireTool } from './support.js';

const TENANTS = Number(process.env.BENCH_TENANTS ?? 100);
const REPO = fileURLToPath(new URL('..', import.meta.url));
requireTool('psql');
const server = await benchServer();
const admin = databaseOf(server.url) ?? 'postgres';
const work = await mkdtemp(join(tmpdir(), 'bench-fleet-'));
const corpus = corpusDir();
const set = await loadMigrationSet(corpus);
const first800 = join(work, 'first-800');
for (const m of set.migrations.slice(0, 800)) await cp(join(corpus, m.path), join(first800, m.path));
const tail = join(work, 'tail.sql');
await writeFile(tail, (await Promise.all(set.migrations.slice(800).map((m) => readFile(join(corpus, m.path), 'utf8')))).join('\n;\n'));
const postgratorDir = join(work, 'postgrator');
await mkdir(postgratorDir);
for (const [i, m] of set.migrations.entries()) await writeFile(join(postgratorDir, `${i + 1}.do.${m.name}.sql`), await readFile(join(corpus, m.path), 'utf8'));

const names = Array.from({ length: TENANTS }, (_, i) => `bench_fleet_t${String(i + 1).padStart(3, '0')}`);
const url = new URL(server.url);

async function sql(statements: string[]): Promise<void> {
  await withClient(server.url, admin, async (c) => {
    for (const s of statements) await c.query(s);
  });
}

async function cloneAll(template: string): Promise<void> {
  await sql(names.flatMap((n) => [`DROP DATABASE IF EXISTS ${quoteIdent(n)} WITH (FORCE)`, `CREATE DATABASE ${quoteIdent(n)} TEMPLATE ${quoteIdent(template)}`]));
}

async function cleanup(): Promise<void> {
  await withClient(server.url, admin, async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_fleet\\_%'`);
    for (const { datname } of rows) await dropDatabase(c, datname);
  });
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

await cleanup();
const config = await loadConfig({ cwd: work, env: { FLOTILLA_DATABASE_URL: withDatabase(server.url, 'bench_fleet_control') } });
const base = { ...config, migrationsDir: first800, tenants: { ...config.tenants, databasePrefix: 'bench_fleet_' }, backup: { ...config.backup, dir: join(work, 'backups') } };
try {
  // Templates: at migration 800 through Flotilla (with its history), and through postgrator (with its own).
  const setup = await Flotilla.open({ config: base });
  await setup.tenants.create({ slug: 'template' });
  for (const n of names) {
    // Registered as Flotilla would have made them (the bench copies them from a template instead, for speed).
    const tenant = await insertTenantRow(setup, {
      slug: n.replace('bench_fleet_', '').replace('_', '-'),
      name: n,
      kind: 'database',
      server: 'main',
      database: n,
      schema: 'public',
      operationId: null,
    });
    await claimStorage(setup, { server: 'main', kind: 'database', name: n }, { purpose: 'tenant', tenantId: tenant.id });
    await activateTenantRow(setup, tenant.slug);
  }
  await setup.close();
  await sql(['CREATE DATABASE bench_fleet_pgtemplate']);
  const postgrator = (db: string, to: number) =>
    spawnSync(
      join(REPO, 'node_modules/.bin/postgrator'),
      [
        '--to',
        String(to),
        '--driver',
        'pg',
        '--host',
        url.hostname,
        '--port',
        url.port || '5432',
        '--database',
        db,
        '--username',
        decodeURIComponent(url.username),
        ...(url.password ? ['--password', decodeURIComponent(url.password)] : []),
        '--migration-pattern',
        `${postgratorDir}/*`,
        '--no-config',
      ],
      { encoding: 'utf8' },
    );
  const warm = postgrator('bench_fleet_pgtemplate', 800);
  if (warm.status !== 0) throw new Error(`postgrator could not build its template: ${warm.stderr || warm.stdout}`);

  const slugs = names.map((n) => n.replace('bench_fleet_', '').replace('_', '-'));
  const flotillaRun = async (policy: 'risky' | 'always', concurrency = 4) => {
    await cloneAll('bench_fleet_template');
    const flotilla = await Flotilla.open({ config: { ...base, migrationsDir: corpus, backup: { ...base.backup, policy } } });
    try {
      const startedAt = performance.now();
      const rollout = await flotilla.rollouts.start({ tenants: slugs }, { concurrency });
      const done = await flotilla.rollouts.run(rollout.id);
      const elapsed = performance.now() - startedAt;
      if (done.counts.succeeded !== TENANTS) throw new Error(`Flotilla: ${JSON.stringify(done.counts)}`);
      const backups = (await flotilla.backups.list()).length;
      for (const b of await flotilla.backups.list()) await flotilla.backups.prune(b.tenant, 0);
      return { elapsed, backups };
    } finally {
      await flotilla.close();
    }
  };
  const a = await flotillaRun('risky');
  // Flotilla's own setting rather than psql's: servers allow more (their default limit here is 16).
  const a8 = await flotillaRun('risky', 8);
  const always = await flotillaRun('always');

  await cloneAll('bench_fleet_template');
  let startedAt = performance.now();
  const pgEnv = { ...process.env, PGHOST: url.hostname, PGPORT: url.port || '5432', PGUSER: decodeURIComponent(url.username), PGPASSWORD: decodeURIComponent(url.password) };
  const psql = spawnSync('bash', ['-c', `printf '%s\\n' ${names.join(' ')} | xargs -P 4 -I{} psql -X -q -v ON_ERROR_STOP=1 -f ${tail} -d {}`], { encoding: 'utf8', env: pgEnv });
  const b = performance.now() - startedAt;
  if (psql.status !== 0) throw new Error(`psql: ${psql.stderr}`);

  await cloneAll('bench_fleet_pgtemplate');
  startedAt = performance.now();
  for (const n of names) {
    const run = postgrator(n, 820);
    if (run.status !== 0) throw new Error(`postgrator on ${n}: ${run.stderr || run.stdout}`);
  }
  const c = performance.now() - startedAt;

  console.log(`bench:fleet — ${TENANTS} database tenants, migration 800 → 820 of the trigger.dev corpus, ${server.label}`);
  console.log(`  (a) Flotilla rollout, 4 at a time, lint + verification + audit + backups by policy (risky): ${seconds(a.elapsed)} (${a.backups} backups taken)`);
  console.log(`  (a) the same, 8 at a time:                                                            ${seconds(a8.elapsed)} (${a8.backups} backups taken)`);
  console.log(`  (a) the same, 4 at a time, backup.policy always (a dump of every tenant first):      ${seconds(always.elapsed)} (${always.backups} backups taken)`);
  console.log(`  (b) psql -f of 801–820, 4 at a time (xargs -P 4), no bookkeeping:                      ${seconds(b)}`);
  console.log(`  (c) one postgrator process per tenant, one after another:                            ${seconds(c)}`);
  console.log(`  a/b = ${(a.elapsed / b).toFixed(2)} at 4, ${(a8.elapsed / b).toFixed(2)} at 8 (goal ≤ 1.25); ${(always.elapsed / b).toFixed(2)} with a dump of every tenant`);
  console.log(`  c/a = ${(c / a.elapsed).toFixed(1)} at 4, ${(c / a8.elapsed).toFixed(1)} at 8 (goal ≥ 10); ${(c / always.elapsed).toFixed(1)} with a dump of every tenant`);
} finally {
  await cleanup();
  await server.stop();
}
