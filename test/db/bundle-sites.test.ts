import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleInstall } from '../../src/control/bundle-installs.js';
import type { ApplyReport, WrittenReport } from '../../src/services/bundle-report.js';
import type { CliResult } from '../support/cli.js';
import { runCli, runProcess } from '../support/cli.js';
import type { Site, SiteOptions, SiteServer, SiteTenant, SocketBridge } from '../support/sites.js';
import {
  createSite,
  runCliOffline,
  S3_COUNTS,
  S3_FAILING_MIGRATION,
  S3_MIGRATIONS_V1,
  S3_MIGRATIONS_V2,
  S3_PRODUCT,
  S3_V1_VERSION,
  S3_V2_VERSION,
  seedSite,
  snapshotDir,
  socketBridge,
  startSiteServers,
  stopSiteServers,
  writeVendorProject,
} from '../support/sites.js';

/**
 * Signed upgrade bundles at customer sites that host the software themselves
 * (scenario S3): the vendor builds one signed file per release; each site
 * verifies and applies it with the real CLI, on a PostgreSQL server of its own.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const S3_V3_VERSION = '0006';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const APP_V2 = { VERSION: '2.0.0\n', 'bin/start.sh': '#!/bin/sh\nexec node server.js\n' };
const APP_V3 = { VERSION: '3.0.0\n', 'bin/start.sh': '#!/bin/sh\nexec node server.js --v3\n' };

type Report = ApplyReport & { reportFiles: WrittenReport };
type HistoryEntry = Omit<BundleInstall, 'report'>;
interface Built {
  readonly file: string;
  readonly digest: string;
}

let dir: string;
let servers: SiteServer[] = [];
const sites: Site[] = [];
let bridge: SocketBridge | undefined;
let publicKey: string;
/** 1.0.0 (release 1.0.0's migrations), 2.0.0 (release 2.0.0 and an application), 3.0.0 (2.0.0, the failing migration, an application). */
let bundles: Record<'v1' | 'v2' | 'v3', Built>;

/** The vendor's machine: no database (FLOTILLA_DATABASE_URL emptied, so the config's absence of one stands). */
const vendorEnv: NodeJS.ProcessEnv = { ...process.env, FLOTILLA_DATABASE_URL: '', FLOTILLA_MIGRATIONS_DIR: '' };

/** Every promise settled before the first failure (if any) is thrown: nothing is left running into the cleanup. */
async function settled<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function parse<T>(result: CliResult, what: string): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`${what}: exit ${result.code}, stdout not JSON:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

async function build(name: string, version: string, migrations: Readonly<Record<string, string>>, app?: Readonly<Record<string, string>>): Promise<Built> {
  const project = join(dir, `vendor-${name}`);
  await writeVendorProject(project, migrations, app);
  const args = ['bundle', 'build', '--version', version, '--key', join(dir, 'keys', 'flotilla-signing.key'), '--out', join(dir, `${name}.flotilla.tgz`), '--json'];
  const result = await runCli([...args, ...(app ? ['--app', 'app'] : [])], { cwd: project, env: vendorEnv });
  expect(result.code, result.stderr).toBe(0);
  const built = parse<{ file: string; digest: string }>(result, `bundle build ${version}`);
  return { file: built.file, digest: built.digest };
}

/** New sites, one per server, created side by side (and registered for cleanup even when one fails). */
async function createSites(name: string, options: SiteOptions = {}): Promise<Site[]> {
  const created = await Promise.allSettled(servers.map((server, i) => createSite(server, `${name}-${i + 1}`, options)));
  const made = created.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  sites.push(...made);
  for (const result of created) if (result.status === 'rejected') throw result.reason;
  return made;
}

const cli = (site: Site, args: readonly string[]) => runCli(args, { cwd: site.dir, env: site.env });
const apply = (site: Site, bundle: Built, json = true) => cli(site, ['bundle', 'apply', bundle.file, '--pubkey', publicKey, ...(json ? ['--json'] : [])]);
const history = async (site: Site) => parse<HistoryEntry[]>(await cli(site, ['bundle', 'history', '--json']), `${site.name} bundle history`);
const backups = async (site: Site) => parse<{ id: string; tenant: string; reason: string; location: string }[]>(await cli(site, ['backup', 'list', '--json']), 'backup list');

/** What a refused or failed apply must leave alone: the record, the backups, the tenants, and the site's files. */
async function siteState(site: Site) {
  const [recorded, taken] = await Promise.all([history(site), backups(site)]);
  const tenants: Record<string, unknown> = {};
  for (const slug of site.tenants) tenants[slug] = { version: await site.version(slug), counts: await site.counts(slug) };
  return {
    history: recorded,
    backups: taken.length,
    tenants,
    migrations: await snapshotDir(join(site.dir, 'migrations')),
    app: await snapshotDir(join(site.dir, 'app')),
    entries: (await readdir(site.dir)).sort(),
  };
}

/** Each tenant's outcome, in the report's order (the slugs' order). */
const outcomes = (report: ApplyReport) =>
  report.tenants.map((t) => ({ tenant: t.tenant, status: t.status, versionBefore: t.versionBefore, versionAfter: t.versionAfter, rowsIntact: t.rowsIntact }));

async function expectSeededRows(site: Site): Promise<void> {
  for (const slug of site.tenants) expect({ site: site.name, slug, counts: await site.counts(slug) }).toEqual({ site: site.name, slug, counts: S3_COUNTS[slug] });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-bundles-'));
  const at = Date.now();
  const keys = await runCli(['keys', 'generate', '--out', join(dir, 'keys'), '--json'], { cwd: dir, env: vendorEnv });
  expect(keys.code, keys.stderr).toBe(0);
  publicKey = parse<{ publicKey: string }>(keys, 'keys generate').publicKey;
  expect((await stat(join(dir, 'keys', 'flotilla-signing.key'))).mode & 0o777).toBe(0o600);
  // Built while the servers start; the servers are kept (for afterAll) even when a build fails.
  const started = startSiteServers(3, join(dir, 'servers')).then((s) => (servers = s));
  const [v1, v2, v3] = await settled([
    build('v1', '1.0.0', S3_MIGRATIONS_V1),
    build('v2', '2.0.0', S3_MIGRATIONS_V2, APP_V2),
    build('v3', '3.0.0', { ...S3_MIGRATIONS_V2, ...S3_FAILING_MIGRATION }, APP_V3),
  ]).finally(() => started.catch(() => undefined));
  await started;
  bundles = { v1: v1!, v2: v2!, v3: v3! };
  console.log(`[bundles] keys, 3 bundles and 3 servers in ${Date.now() - at} ms`);
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await Promise.all(sites.map((site) => site.cleanup()));
  await stopSiteServers(servers);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('signed bundles at sites that host the software themselves (scenario S3)', () => {
  it('S3: one bundle, built once, installs at three sites on servers of their own; applying it again, or an older one, is refused and changes nothing', async () => {
    let at = Date.now();
    const three = await createSites('up', { appDir: 'app' });
    for (const site of three) await expectSeededRows(site);
    const created = Date.now() - at;
    at = Date.now();
    const results = await settled(three.map((site) => apply(site, bundles.v2)));
    const applied = Date.now() - at;
    const vendorApp = await snapshotDir(join(dir, 'vendor-v2', 'app'));
    const vendorMigrations = await snapshotDir(join(dir, 'vendor-v2', 'migrations'));
    const checks = three.map(async (site, i) => {
      expect(results[i]!.code, `${site.name}: ${results[i]!.stderr}`).toBe(0);
      const report = parse<Report>(results[i]!, `${site.name} bundle apply`);
      expect(report).toMatchObject({ outcome: 'installed', product: S3_PRODUCT, version: '2.0.0', previousVersion: null, bundle: { digest: bundles.v2.digest } });
      expect(outcomes(report)).toEqual(
        (['branch', 'hq'] as const).map((tenant) => ({ tenant, status: 'upgraded', versionBefore: S3_V1_VERSION, versionAfter: S3_V2_VERSION, rowsIntact: true })),
      );
      for (const t of report.tenants) {
        expect(t.backupId).toMatch(UUID);
        expect(t.rowsAfter).toBeGreaterThanOrEqual(t.rowsBefore!);
      }
      expect(report.restoreCommands).toHaveLength(2);
      // The real rows, counted afresh, and the tenants' versions as `status` reports them.
      await expectSeededRows(site);
      for (const slug of site.tenants) expect(await site.version(slug)).toBe(S3_V2_VERSION);
      expect(await history(site)).toEqual([
        expect.objectContaining({ product: S3_PRODUCT, version: '2.0.0', outcome: 'installed', digest: bundles.v2.digest, keyId: report.bundle.keyId }),
      ]);
      // The application went where the site's config says, and the site's migrations became the release's.
      expect(report.app).toMatchObject({ installed: true, dir: join(site.dir, 'app'), files: 2 });
      expect(await snapshotDir(join(site.dir, 'app'))).toEqual(vendorApp);
      expect((await stat(join(site.dir, 'app', 'bin', 'start.sh'))).mode & 0o777, 'the script stays executable').toBe(0o755);
      expect(await snapshotDir(join(site.dir, 'migrations'))).toEqual(vendorMigrations);
      expect(JSON.parse(await readFile(report.reportFiles.json, 'utf8'))).toMatchObject({ outcome: 'installed', version: '2.0.0' });
    });
    await settled(checks);

    // Refusals, before anything is touched: the same bundle again, then an older one signed by the same key.
    const site = three[0]!;
    const before = await siteState(site);
    expect(before.backups).toBe(2);
    const again = await apply(site, bundles.v2);
    expect({ code: again.code, error: parse<{ error: { code: string } }>(again, 'apply again').error.code }).toEqual({ code: 5, error: 'FLO_BUNDLE_INSTALLED' });
    const older = await apply(site, bundles.v1);
    expect({ code: older.code, error: parse<{ error: { code: string } }>(older, 'apply older').error.code }).toEqual({ code: 5, error: 'FLO_BUNDLE_OLDER' });
    expect(await siteState(site)).toEqual(before);
    console.log(`[bundles] S3: 3 sites created in ${created} ms, bundle 2.0.0 applied at all three (side by side) in ${applied} ms`);
  });

  it('a migration failing at one of three sites: that site stops, keeps its release and rows, prints working restore commands; the others install', async () => {
    const three = await createSites('fail', { appDir: 'app' });
    // The third site's branch has a claim without an amount: 0006 fails there. branch comes before hq, so hq is not started.
    const failing = three[2]!;
    await seedSite(failing, { nullClaimAmount: true, tenant: 'branch' });
    // Each site runs release 1.0.0 of the application, in the folder its config names.
    for (const site of three) {
      await mkdir(join(site.dir, 'app'));
      await writeFile(join(site.dir, 'app', 'VERSION'), '1.0.0\n');
    }
    const before = await siteState(failing);
    expect(Object.keys(before.app)).toEqual(['VERSION']);

    const [ok1, ok2, failed] = await settled([apply(three[0]!, bundles.v3), apply(three[1]!, bundles.v3), apply(failing, bundles.v3, false)]);
    const installedAt = async (site: Site, result: CliResult) => {
      expect(result.code, `${site.name}: ${result.stderr}`).toBe(0);
      const report = parse<Report>(result, `${site.name} bundle apply`);
      expect(report.outcome).toBe('installed');
      expect(outcomes(report).map((t) => [t.tenant, t.status, t.versionAfter, t.rowsIntact])).toEqual([
        ['branch', 'upgraded', S3_V3_VERSION, true],
        ['hq', 'upgraded', S3_V3_VERSION, true],
      ]);
      expect(await readFile(join(site.dir, 'app', 'VERSION'), 'utf8')).toBe('3.0.0\n');
      expect((await history(site)).map((h) => [h.version, h.outcome])).toEqual([['3.0.0', 'installed']]);
      await expectSeededRows(site);
    };
    const failedAt = async (site: Site, result: CliResult) => {
      // The failing site: exit 6, the report printed as text (and written as JSON), with the restore command.
      expect(result.code, result.stderr).toBe(6);
      const jsonFile = /and (\S+\.json)[ .]/.exec(result.stdout)?.[1];
      expect(jsonFile, result.stdout).toBeDefined();
      const report = JSON.parse(await readFile(jsonFile!, 'utf8')) as ApplyReport;
      expect(report).toMatchObject({ outcome: 'failed', version: '3.0.0', app: { installed: false } });
      expect(outcomes(report)).toEqual([
        { tenant: 'branch', status: 'failed', versionBefore: S3_V1_VERSION, versionAfter: S3_V1_VERSION, rowsIntact: true },
        { tenant: 'hq', status: 'not started', versionBefore: null, versionAfter: null, rowsIntact: null },
      ]);
      const branch = report.tenants[0]!;
      expect(branch.error?.message).toMatch(/column "amount" of relation "claims" contains null values/);
      expect(branch.backupId).toMatch(UUID);
      expect(report.restoreCommands).toEqual([`flotilla restore branch --backup ${branch.backupId}`]);
      expect(result.stdout).toContain(`flotilla restore branch --backup ${branch.backupId}`);
      expect(result.stdout).toMatch(/FAILED/);

      // Nothing of 3.0.0 stayed: tenants at release 1.0.0 with their rows, migrations and application as they were.
      const after = await siteState(site);
      expect(after.tenants).toEqual(before.tenants);
      expect(after.tenants).toEqual({
        hq: { version: S3_V1_VERSION, counts: S3_COUNTS.hq },
        branch: { version: S3_V1_VERSION, counts: S3_COUNTS.branch },
      });
      expect({ migrations: after.migrations, app: after.app }).toEqual({ migrations: before.migrations, app: before.app });
      expect(after.entries.filter((e) => e.includes('.previous-') || e.includes('.incoming-'))).toEqual([]);
      expect(after.history.map((h) => [h.version, h.outcome, h.digest])).toEqual([['3.0.0', 'failed', bundles.v3.digest]]);
      expect(after.backups).toBe(1);

      // The printed restore command works as printed, and brings back rows lost since (its claims, deleted here).
      const [slug, id] = /flotilla restore (\S+) --backup (\S+)/.exec(result.stdout)!.slice(1) as [SiteTenant, string];
      await site.withFlotilla((f) => f.tenants.withClient(slug, (client) => client.query('DELETE FROM claims')));
      expect((await site.counts(slug)).claims).toBe(0);
      const restored = await cli(site, ['restore', slug, '--backup', id]);
      expect(restored.code, restored.stderr).toBe(0);
      expect({ version: await site.version(slug), counts: await site.counts(slug) }).toEqual({ version: S3_V1_VERSION, counts: S3_COUNTS[slug] });
    };
    await settled([installedAt(three[0]!, ok1!), installedAt(three[1]!, ok2!), failedAt(failing, failed!)]);
  });

  it('verifies and applies with no network at all (unshare -n), through a Unix socket named by FLOTILLA_DATABASE_URL, backups included', async () => {
    const unshare = await runProcess('unshare', ['-n', 'true'], { cwd: ROOT });
    expect(unshare.code, `\`unshare -n true\` failed (${unshare.stderr.trim()}): this test needs network namespaces (root, or unprivileged user namespaces)`).toBe(0);
    const site = await createSite(servers[0]!, 'offline', { appDir: 'app' });
    sites.push(site);
    bridge = await socketBridge(site.server.port, join(dir, 'sock'));

    // Inside the namespace 127.0.0.1 cannot be reached: TCP to the very server fails...
    const tcp = await runProcess(
      'unshare',
      ['-n', process.execPath, '-e', `require('node:net').connect(${site.server.port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(3))`],
      { cwd: ROOT },
    );
    expect(tcp.code, 'TCP to 127.0.0.1 must fail under unshare -n').toBe(3);
    // ...so the site's config URL (TCP) cannot serve: with it alone, Flotilla finds PostgreSQL unavailable.
    const config = JSON.parse(await readFile(join(site.dir, 'flotilla.config.json'), 'utf8')) as { databaseUrl: string };
    expect(new URL(config.databaseUrl).hostname).toBe('127.0.0.1');
    const configOnly = await runCliOffline(['bundle', 'history', '--json'], { cwd: site.dir, env: { ...site.env, FLOTILLA_DATABASE_URL: '' } });
    expect(configOnly.code, configOnly.stdout + configOnly.stderr).toBe(8);

    // FLOTILLA_DATABASE_URL wins over the config: the socket's URL, for the control database and (as the main server's URL) the tenants.
    const env = { ...site.env, FLOTILLA_DATABASE_URL: bridge.url(site.controlDatabase) };
    const verified = await runCliOffline(['bundle', 'verify', bundles.v2.file, '--pubkey', publicKey, '--json'], { cwd: site.dir, env });
    expect(verified.code, verified.stderr).toBe(0);
    expect(parse(verified, 'offline verify')).toMatchObject({ valid: true, product: S3_PRODUCT, version: '2.0.0', digest: bundles.v2.digest });
    const applied = await runCliOffline(['bundle', 'apply', bundles.v2.file, '--pubkey', publicKey, '--json'], { cwd: site.dir, env });
    expect(applied.code, applied.stderr).toBe(0);
    const report = parse<Report>(applied, 'offline apply');
    expect(report.outcome).toBe('installed');
    expect(report.environment.servers.map((s) => s.name)).toEqual(['main']);
    expect(outcomes(report)).toEqual(
      (['branch', 'hq'] as const).map((tenant) => ({ tenant, status: 'upgraded', versionBefore: S3_V1_VERSION, versionAfter: S3_V2_VERSION, rowsIntact: true })),
    );

    // Checked back online: upgraded, rows intact, and a pg_dump backup of each tenant taken through the socket.
    for (const slug of site.tenants) expect(await site.version(slug)).toBe(S3_V2_VERSION);
    await expectSeededRows(site);
    const taken = await backups(site);
    expect(taken.map((b) => [b.tenant, b.id, b.reason]).sort()).toEqual(report.tenants.map((t) => [t.tenant, t.backupId, `before bundle ${S3_PRODUCT} 2.0.0`]).sort());
    for (const b of taken) expect((await stat(b.location)).size).toBeGreaterThan(0);
    expect((await history(site)).map((h) => [h.version, h.outcome])).toEqual([['2.0.0', 'installed']]);
    expect(await readFile(join(site.dir, 'app', 'VERSION'), 'utf8')).toBe('2.0.0\n');
  });
});
