/**
 * bench:backup — a `snapshot` backup (CREATE DATABASE … TEMPLATE) against a `dump`
 * (pg_dump custom format, SHA-256) of the same ~100 MB database tenant, in the
 * same run, alternating; each includes counting the rows it records.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { Flotilla } from '../src/flotilla.js';
import { withClient } from '../src/postgres/connect.js';
import { dropDatabase } from '../src/postgres/provision.js';
import { databaseOf, withDatabase } from '../src/postgres/server-url.js';
import { benchServer, median, requireTool } from './support.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
requireTool('pg_dump');
const server = await benchServer();
const admin = databaseOf(server.url) ?? 'postgres';
const dir = await mkdtemp(join(tmpdir(), 'bench-backup-'));
await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'migrations')));
await writeFile(
  join(dir, 'migrations', '0001_data.sql'),
  'CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now());',
);
const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: withDatabase(server.url, 'bench_backup_control') } });
const cleanup = async () =>
  withClient(server.url, admin, async (c) => {
    // Only this benchmark's own databases; its snapshots are pruned after every round.
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_backup\\_%'`);
    for (const { datname } of rows) await dropDatabase(c, datname);
  });
await cleanup();
const flotilla = await Flotilla.open({
  config: { ...config, tenants: { ...config.tenants, databasePrefix: 'bench_backup_' }, backup: { ...config.backup, dir: join(dir, 'backups') } },
});
try {
  await flotilla.tenants.create({ slug: 'big' });
  const size = await flotilla.tenants.withClient('big', async (c) => {
    await c.query(`INSERT INTO events (account_id, payload) SELECT i % 5000, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 900000) i`);
    await c.query('VACUUM ANALYZE events');
    return Number((await c.query('SELECT pg_database_size(current_database()) AS s')).rows[0].s);
  });
  const times: Record<'snapshot' | 'dump', number[]> = { snapshot: [], dump: [] };
  let dumpSize = 0;
  for (let i = 0; i < ROUNDS; i++) {
    for (const strategy of ['snapshot', 'dump'] as const) {
      const started = performance.now();
      const backup = await flotilla.backups.create('big', { strategy });
      times[strategy].push(performance.now() - started);
      if (strategy === 'dump') dumpSize = backup.sizeBytes;
      await flotilla.backups.prune('big', 0);
    }
  }
  const snapshot = median(times.snapshot);
  const dump = median(times.dump);
  console.log(`bench:backup — database tenant of ${(size / 1024 / 1024).toFixed(0)} MB (900,000 rows), ${ROUNDS} rounds each, ${server.label}`);
  console.log(`  snapshot (CREATE DATABASE … TEMPLATE): median ${(snapshot / 1000).toFixed(2)} s  [${times.snapshot.map((v) => (v / 1000).toFixed(2)).join(', ')}]`);
  console.log(
    `  dump (pg_dump -Fc + SHA-256):          median ${(dump / 1000).toFixed(2)} s  [${times.dump.map((v) => (v / 1000).toFixed(2)).join(', ')}], file ${(dumpSize / 1024 / 1024).toFixed(0)} MB`,
  );
  console.log(`  dump / snapshot = ${(dump / snapshot).toFixed(1)}x`);
} finally {
  await flotilla.close();
  await cleanup();
  await server.stop();
}
