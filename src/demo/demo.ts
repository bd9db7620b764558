import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResolvedConfig } from '../config/config.js';
import { loadConfig } from '../config/config.js';
import { FlotillaError } from '../core/errors.js';
import { readMigrationDir } from '../core/migration-file.js';
import { renderSumFile, SUM_FILE } from '../core/sum-file.js';
import type { MigrateReport, TenantState } from '../core/outcomes.js';
import { Flotilla } from '../flotilla.js';
import { openControlPlane } from '../services/control-plane.js';
import { withClient } from '../postgres/connect.js';
import { startEmbedded } from '../postgres/embedded.js';
import { databaseExists, dropDatabase } from '../postgres/provision.js';
import { OwnedStorage } from '../tenancy/owned-storage.js';
import { adminDatabase, databaseOf, withDatabase } from '../postgres/server-url.js';
import type { TenantKind } from '../core/tenant.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/loans', import.meta.url));
const CONTROL_DATABASE = 'flotilla_demo';
const TABLES = ['members', 'loans', 'payments'] as const;

/** Three organizations of the sample app: two with a database each, one with a schema. */
export const DEMO_TENANTS: readonly { slug: string; name: string; kind: TenantKind; members: number; loansPerMember: number; paymentsPerLoan: number }[] = [
  { slug: 'paris', name: 'Lending circle Paris', kind: 'database', members: 12, loansPerMember: 2, paymentsPerLoan: 3 },
  { slug: 'lyon', name: 'Lending circle Lyon', kind: 'database', members: 7, loansPerMember: 1, paymentsPerLoan: 4 },
  { slug: 'nice', name: 'Lending circle Nice', kind: 'schema', members: 9, loansPerMember: 3, paymentsPerLoan: 2 },
];

export interface RowCount {
  readonly tenant: string;
  readonly table: string;
  readonly before: number;
  readonly after: number;
  /** Rows still without a client after the upgrade (must be 0). */
  readonly missingClient: number;
}

export interface DemoResult {
  readonly report: MigrateReport;
  readonly status: readonly TenantState[];
  readonly counts: readonly RowCount[];
}

export interface DemoEvents {
  step(text: string): void;
}

export interface DemoOptions {
  readonly cwd?: string;
  readonly events?: DemoEvents;
}

/** A demo run whose PostgreSQL server is kept for its tenants to be served, until released. */
export interface OpenDemo {
  readonly result: DemoResult;
  /** The demo's control database (with its credentials): a tenant runtime's `databaseUrl`. */
  readonly controlUrl: string;
  /** Lets go of the server: the embedded one stops when no other process uses it. */
  release(): Promise<void>;
}

/**
 * The main job on a fresh machine: registers three tenants of the sample app,
 * fills them with rows, adds an S1-style migration (a column back-filled, then
 * NOT NULL), migrates all three, and checks every row is still there.
 * Everything lives in its own control database (`flotilla_demo`), reset on each run.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const demo = await openDemo(options);
  try {
    return demo.result;
  } finally {
    await demo.release();
  }
}

/** Runs the demo and keeps its server (the embedded one it started or joined) until `release()`. */
export async function openDemo(options: DemoOptions = {}): Promise<OpenDemo> {
  const cwd = options.cwd ?? process.cwd();
  const say = options.events?.step ?? (() => undefined);
  const base = await loadConfig({ cwd });
  const embedded = base.databaseUrl ? undefined : await startEmbedded(base.embedded.dataDir);
  const release = async () => {
    await embedded?.release();
  };
  try {
    const serverUrl = base.databaseUrl ?? embedded!.url;
    say(base.databaseUrl ? `PostgreSQL: ${databaseOf(serverUrl) ? 'the configured server' : serverUrl}` : `PostgreSQL: embedded, data in ${base.embedded.dataDir}`);
    const controlUrl = withDatabase(serverUrl, CONTROL_DATABASE);
    const result = await demo(base, serverUrl, say);
    return { result, controlUrl, release };
  } catch (error) {
    await release();
    throw error;
  }
}

async function demo(base: ResolvedConfig, serverUrl: string, say: (text: string) => void): Promise<DemoResult> {
  const workDir = join(base.embedded.dataDir, '..', 'demo');
  const migrationsDir = join(workDir, 'migrations');
  // Backups need pg_dump for the schema tenant; a bare machine may lack it, and the demo must still run.
  const canDump = spawnSync('pg_dump', ['--version']).status === 0;
  if (!canDump) say('pg_dump is not installed: this demo runs without backups (apt-get install postgresql-client-15 to see them)');
  const config: ResolvedConfig = {
    ...base,
    databaseUrl: withDatabase(serverUrl, CONTROL_DATABASE),
    migrationsDir,
    tenants: { ...base.tenants, databasePrefix: 'demo_', schemaPrefix: 'demo_', schemaDatabase: 'flotilla_demo_tenants' },
    backup: { ...base.backup, policy: canDump ? 'risky' : 'never', strategy: 'snapshot', dir: join(workDir, 'backups') },
  };
  await resetDemo(serverUrl, workDir);
  await copyMigrations(join(EXAMPLE, 'migrations'), migrationsDir);
  let flotilla = await Flotilla.open({ config });
  try {
    for (const t of DEMO_TENANTS) {
      await flotilla.tenants.create({ slug: t.slug, name: t.name, kind: t.kind });
      await seed(flotilla, t);
      say(`Created tenant ${t.slug} (${t.kind}) with ${t.members} members, ${t.members * t.loansPerMember} loans, ${t.members * t.loansPerMember * t.paymentsPerLoan} payments`);
    }
    const before = await countRows(flotilla);
    await copyFile(join(EXAMPLE, 'upgrade', '0004_client_id.sql'), join(migrationsDir, '0004_client_id.sql'));
    await writeSum(migrationsDir);
    say('Added migration 0004_client_id.sql: client_id added, back-filled, then NOT NULL');
    await flotilla.close();
    flotilla = await Flotilla.open({ config });
    const report = await flotilla.upgrade.migrate({ all: true });
    const after = await countRows(flotilla);
    const status = await flotilla.status.fleet();
    const counts = before.map((b, i) => ({ ...b, after: after[i]!.before, missingClient: after[i]!.missingClient }));
    const lost = counts.filter((c) => c.after !== c.before || c.missingClient !== 0);
    if (report.failed > 0 || lost.length > 0) {
      throw new FlotillaError('FLO_MIGRATION_FAILED', `The demo upgrade did not keep every row: ${JSON.stringify(lost)}`, {
        hint: 'This is a bug in Flotilla: please report it with this output.',
      });
    }
    return { report, status, counts };
  } finally {
    await flotilla.close();
  }
}

/**
 * Clears the previous run: everything its control database records having made
 * (tenant databases and schemas, snapshots, dump files), then that control
 * database. Nothing is removed by name alone.
 */
async function resetDemo(serverUrl: string, workDir: string): Promise<void> {
  const exists = await withClient(serverUrl, adminDatabase(serverUrl), (admin) => databaseExists(admin, CONTROL_DATABASE));
  if (exists) {
    // Its control plane, brought up to date as Flotilla.open would, read for what it made.
    const registry = await openControlPlane(withDatabase(serverUrl, CONTROL_DATABASE), CONTROL_DATABASE);
    try {
      const storage = new OwnedStorage(registry.storage, (name) => registry.serverUrl(name));
      for (const claim of (await registry.storage.all()).reverse()) if (claim.purpose !== 'control') await storage.removeObject(claim);
    } finally {
      await registry.close();
    }
    await withClient(serverUrl, adminDatabase(serverUrl), (admin) => dropDatabase(admin, CONTROL_DATABASE));
  }
  await rm(workDir, { recursive: true, force: true });
}

async function copyMigrations(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const file of await readdir(from)) await copyFile(join(from, file), join(to, file));
  await writeSum(to);
}

async function writeSum(dir: string): Promise<void> {
  await writeFile(join(dir, SUM_FILE), renderSumFile(await readMigrationDir(dir)));
}

async function seed(flotilla: Flotilla, t: (typeof DEMO_TENANTS)[number]): Promise<void> {
  await flotilla.tenants.withClient(t.slug, async (client) => {
    await client.query(`INSERT INTO members (full_name, email) SELECT 'Member ' || i, $1 || '-' || i || '@example.org' FROM generate_series(1, $2::int) AS i`, [t.slug, t.members]);
    await client.query(`INSERT INTO loans (member_id, amount_cents) SELECT m.id, 10000 * k FROM members m, generate_series(1, $1::int) AS k`, [t.loansPerMember]);
    await client.query(`INSERT INTO payments (loan_id, amount_cents) SELECT l.id, 500 FROM loans l, generate_series(1, $1::int)`, [t.paymentsPerLoan]);
  });
}

async function countRows(flotilla: Flotilla): Promise<RowCount[]> {
  const counts: RowCount[] = [];
  for (const t of DEMO_TENANTS) {
    await flotilla.tenants.withClient(t.slug, async (client) => {
      const { rows: columns } = await client.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'members' AND column_name = 'client_id'`,
      );
      for (const table of TABLES) {
        const missing = columns.length > 0 ? `count(*) FILTER (WHERE client_id IS NULL)` : '0';
        const { rows } = await client.query<{ n: string; missing: string }>(`SELECT count(*) AS n, ${missing} AS missing FROM ${table}`);
        counts.push({ tenant: t.slug, table, before: Number(rows[0]!.n), after: Number(rows[0]!.n), missingClient: Number(rows[0]!.missing) });
      }
    });
  }
  return counts;
}
