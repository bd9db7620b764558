import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { inject } from 'vitest';
import type { ResolvedConfig } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/config.js';
import { withClient } from '../../src/postgres/connect.js';
import { dropDatabase } from '../../src/postgres/provision.js';
import { withDatabase } from '../../src/postgres/server-url.js';

export function serverUrl(): string {
  return inject('databaseUrl');
}

/**
 * A throw-away project: a directory with a migrations folder, and a config whose
 * control database and tenant names all start with one random prefix, so test
 * files can run in parallel on one server and clean up after themselves.
 */
export interface TestProject {
  readonly dir: string;
  readonly migrationsDir: string;
  readonly prefix: string;
  readonly config: ResolvedConfig;
  /** Environment for CLI processes run in `dir`. */
  readonly env: NodeJS.ProcessEnv;
  write(files: Record<string, string>): Promise<void>;
  query<T extends pg.QueryResultRow = Record<string, unknown>>(database: string, sql: string, params?: unknown[]): Promise<T[]>;
  cleanup(): Promise<void>;
}

/** The prefixes of the projects this test file made: its databases, and no other file's, start with one. */
export const projectPrefixes: string[] = [];

export async function testProject(): Promise<TestProject> {
  const prefix = `ft${randomBytes(4).toString('hex')}`;
  projectPrefixes.push(prefix);
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const migrationsDir = join(dir, 'migrations');
  await mkdir(migrationsDir);
  const url = serverUrl();
  const databaseUrl = withDatabase(url, `${prefix}_control`);
  const tenants = { databasePrefix: `${prefix}_`, schemaPrefix: `${prefix}_`, schemaDatabase: `${prefix}_schemas` };
  await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', tenants, engine: { lockWaitMs: 5000 } }, null, 2));
  const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: databaseUrl } });
  return {
    dir,
    migrationsDir,
    prefix,
    config,
    env: { ...process.env, FLOTILLA_DATABASE_URL: databaseUrl, FLOTILLA_MIGRATIONS_DIR: '' },
    async write(files) {
      for (const [name, sql] of Object.entries(files)) {
        await mkdir(join(migrationsDir, name, '..'), { recursive: true });
        await writeFile(join(migrationsDir, name), sql);
      }
    },
    query: (database, sql, params) => withClient(url, database, async (client) => (await client.query(sql, params)).rows),
    async cleanup() {
      // Snapshot backups are databases named by Flotilla, not by the prefix: find them in this project's catalog.
      const snapshots = await withClient(url, `${prefix}_control`, async (client) =>
        (await client.query<{ location: string }>(`SELECT location FROM flotilla.backups WHERE strategy = 'snapshot'`)).rows.map((r) => r.location),
      ).catch(() => [] as string[]);
      // Schema tenants' roles belong to the server, not to a database: found in this project's claims.
      const roles = await withClient(url, `${prefix}_control`, async (client) =>
        (await client.query<{ name: string }>(`SELECT name FROM flotilla.storage WHERE kind = 'role'`)).rows.map((r) => r.name),
      ).catch(() => [] as string[]);
      await withClient(url, 'postgres', async (admin) => {
        const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${prefix}%`]);
        for (const datname of [...snapshots, ...rows.map((r) => r.datname)]) await dropDatabase(admin, datname);
        for (const role of roles) await admin.query(`DROP ROLE IF EXISTS "${role}"`);
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Databases on the test server whose name starts with a prefix. */
export async function databasesLike(prefix: string): Promise<string[]> {
  return withClient(serverUrl(), 'postgres', async (admin) =>
    (await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1`, [`${prefix}%`])).rows.map((r) => r.datname),
  );
}
