import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import semver from 'semver';
import type { BundleInstall } from '../control/bundle-installs.js';
import { APP_FOLDER, MIGRATIONS_FOLDER } from '../core/bundle/manifest.js';
import type { VerifiedBundle } from '../core/bundle/verify.js';
import { FlotillaError, toFlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import type { TenantOutcome } from '../core/outcomes.js';
import type { Server, Tenant } from '../core/tenant.js';
import { existingSchemas } from '../postgres/provision.js';
import { withClient } from '../postgres/connect.js';
import { countRows } from '../postgres/row-counts.js';
import { tenancyModel } from '../tenancy/models.js';
import { checkEnvironment } from './bundle-environment.js';
import { installFolder } from './bundle-payload.js';
import type { ApplyReport, TenantApplyReport, WrittenReport } from './bundle-report.js';
import { writeReport } from './bundle-report.js';
import { BundleSource } from './bundle-source.js';
import type { ServiceContext } from './context.js';
import { flotillaVersion } from './flotilla-version.js';
import { UpgradeService } from './upgrade.js';

export interface ApplyResult {
  readonly report: ApplyReport;
  readonly files: WrittenReport;
}

/**
 * Applies verified bundles at a site, and keeps the record of what was
 * installed: refuses a bundle that is not newer than the installed one, checks
 * the environment, backs every tenant up, upgrades each with the usual verified
 * engine (stopping at the first failure), compares row counts with the backups,
 * installs the application payload only when every tenant succeeded, and writes
 * a report. A failed apply returns its report (outcome `failed`); it throws only
 * when it refused before touching anything.
 */
export class BundleService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Every bundle applied at this site, oldest first (failed attempts included). */
  history(): Promise<BundleInstall[]> {
    return this.ctx.registry.bundles.list();
  }

  /** The newest bundle installed (successfully) for the product. */
  async installed(product: string): Promise<BundleInstall | undefined> {
    return (await this.ctx.registry.bundles.list(product)).filter((i) => i.outcome === 'installed').at(-1);
  }

  async apply(bundle: VerifiedBundle, options: { onTenant?: (tenant: TenantApplyReport) => void } = {}): Promise<ApplyResult> {
    const startedAt = new Date();
    const { manifest } = bundle;
    const { config, registry } = this.ctx;
    const product = config.bundles.product ?? manifest.product;
    if (manifest.product !== product) {
      throw new FlotillaError('FLO_BUNDLE_OTHER_PRODUCT', `The bundle is for ${manifest.product}, and this site runs ${product}.`, {
        hint: 'Check that you were sent the bundle for your product; nothing was changed.',
        meta: { bundle: manifest.product, site: product },
      });
    }
    const previous = await this.installed(product);
    assertNewer(manifest, previous);
    const source = new BundleSource(bundle.files);
    const set = await source.current();
    const tenants = (await registry.listTenants()).sort((a, b) => (a.slug < b.slug ? -1 : 1));
    const servers = new Map((await registry.listServers()).map((s) => [s.name, s]));
    const environment = await checkEnvironment(tenants, servers, config.backup.dir);
    // The bundle's migrations, and no backup by policy: every tenant was backed up just before, whatever the policy.
    const upgrade = new UpgradeService({ ...this.ctx, migrations: source, config: { ...config, backup: { ...config.backup, policy: 'never' } } });
    const args = { product, version: manifest.version, digest: bundle.digest };
    const reports = await this.ctx.operations.run({ command: 'bundle apply', arguments: args }, async (op) => {
      const active = tenants.filter((t) => t.status === 'active');
      const context = await upgrade.context(set, active);
      const results: TenantApplyReport[] = [];
      let failed = false;
      for (const tenant of tenants) {
        const result: TenantApplyReport =
          tenant.status !== 'active'
            ? notRun(tenant, 'skipped', `not upgraded: the tenant is ${tenant.status}`)
            : failed
              ? notRun(tenant, 'not started', 'not upgraded: an earlier tenant failed, so the apply stopped')
              : await this.upgradeOne(tenant, servers.get(tenant.server)!, set, op, `before bundle ${product} ${manifest.version}`, (t) =>
                  upgrade.upgradeTenant(t, context, { runId: op.id, op, dryRun: false, claimedByRollout: false }),
                );
        failed ||= result.status === 'failed';
        results.push(result);
        options.onTenant?.(result);
      }
      return { result: results, record: { runId: op.id, ...(failed ? { outcome: 'failed' as const, errorMessage: 'a tenant failed' } : {}) } };
    });
    const failed = reports.some((r) => r.status === 'failed' || (r.rowsIntact === false && r.status !== 'skipped'));
    // The site's migrations become the release's, so that status and later commands know what the tenants hold.
    if (!failed) await installFolder(bundle.files, MIGRATIONS_FOLDER, config.migrationsDir);
    const app = await this.payload(bundle, failed);
    const finishedAt = new Date();
    const restoreCommands = reports.filter((r) => r.restoreCommand !== null).map((r) => r.restoreCommand!);
    const report: ApplyReport = {
      format: 'flotilla-bundle-report/1',
      outcome: failed ? 'failed' : 'installed',
      product,
      version: manifest.version,
      previousVersion: previous?.version ?? null,
      bundle: { digest: bundle.digest, keyId: manifest.keyId, createdAt: manifest.createdAt, sizeBytes: bundle.sizeBytes, migrations: manifest.migrations.count },
      site: { host: hostname(), projectDir: config.projectDir, flotilla: flotillaVersion() },
      environment,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      tenants: reports,
      app,
      restoreCommands,
      nextSteps: nextSteps(failed, reports, previous?.version ?? null),
    };
    const files = await writeReport(report, config.bundles.reportsDir, config.bundles.siteKey);
    const id = randomUUID();
    await registry.bundles.record({
      id,
      product,
      version: manifest.version,
      digest: bundle.digest,
      keyId: manifest.keyId,
      outcome: report.outcome,
      startedAt: report.startedAt,
      installedBy: this.ctx.actor,
      report,
    });
    return { report, files };
  }

  /** One tenant: a backup, the upgrade, then its rows counted again and compared with the backup's. */
  private async upgradeOne(
    tenant: Tenant,
    server: Server,
    set: MigrationSet,
    op: OperationContext,
    reason: string,
    run: (tenant: Tenant) => Promise<TenantOutcome>,
  ): Promise<TenantApplyReport> {
    const started = performance.now();
    const base = { tenant: tenant.slug, kind: tenant.kind, note: null };
    let backup: Awaited<ReturnType<ServiceContext['backups']['backup']>>;
    try {
      backup = await this.ctx.backups.backup(tenant, server, set, op, { reason, runId: op.id });
    } catch (error) {
      return { ...notRun(tenant, 'failed', null), error: errorOf(error), durationMs: performance.now() - started };
    }
    const outcome = await run(tenant);
    const after = await this.rowCounts(tenant, server, set).catch(() => undefined);
    const before = backup.rowCounts;
    const differences = after ? rowDifferences(before, after) : ['rows could not be counted after the upgrade'];
    const ok = outcome.status !== 'failed';
    return {
      ...base,
      status: !ok ? 'failed' : 'migrations' in outcome && outcome.migrations.length > 0 ? 'upgraded' : 'unchanged',
      versionBefore: backup.schemaVersion,
      versionAfter: ok && 'toVersion' in outcome ? outcome.toVersion : backup.schemaVersion,
      tablesBefore: Object.keys(before).length,
      rowsBefore: total(before),
      tablesAfter: after ? Object.keys(after).length : null,
      rowsAfter: after ? total(after) : null,
      rowsIntact: differences.length === 0,
      rowDifferences: differences,
      backupId: backup.id,
      durationMs: performance.now() - started,
      error: outcome.status === 'failed' ? errorOf(outcome.error) : null,
      restoreCommand: `flotilla restore ${tenant.slug} --backup ${backup.id}`,
    };
  }

  private async rowCounts(tenant: Tenant, server: Server, set: MigrationSet) {
    const scope = await tenancyModel(tenant.kind).backupScope(tenant, server, set, this.ctx.storage);
    return withClient(server.url, tenant.database, async (client) =>
      countRows(client, { schemas: scope.schemas ? await existingSchemas(client, scope.schemas) : undefined, tenantSchema: scope.tenantSchema }),
    );
  }

  private async payload(bundle: VerifiedBundle, failed: boolean): Promise<ApplyReport['app']> {
    const dir = this.ctx.config.bundles.appDir ?? null;
    if (!bundle.manifest.app) return { installed: false, dir, files: 0, note: 'the bundle carries no application files' };
    if (failed) return { installed: false, dir, files: 0, note: 'a tenant failed, so the application was left as it was' };
    if (dir === null) return { installed: false, dir, files: 0, note: 'bundles.appDir is not set in flotilla.config.json' };
    const executables = new Set(bundle.manifest.files.filter((f) => f.executable).map((f) => f.path));
    const installed = await installFolder(bundle.files, APP_FOLDER, dir, executables);
    return { installed: true, dir, files: installed.files, note: installed.previous ? `the previous application was kept in ${installed.previous}` : null };
  }
}

/** Anti-rollback: the bundle must be newer than what is installed, and upgrade from it. */
function assertNewer(manifest: VerifiedBundle['manifest'], installed: BundleInstall | undefined): void {
  if (!installed) return;
  const meta = { installed: installed.version, bundle: manifest.version };
  if (semver.eq(manifest.version, installed.version)) {
    throw new FlotillaError('FLO_BUNDLE_INSTALLED', `${manifest.product} ${manifest.version} is already installed here (since ${installed.finishedAt}).`, {
      hint: 'Nothing to do. `flotilla bundle history` lists what was installed when.',
      meta,
    });
  }
  if (semver.lt(manifest.version, installed.version)) {
    throw new FlotillaError('FLO_BUNDLE_OLDER', `The bundle holds ${manifest.product} ${manifest.version}, older than the ${installed.version} installed here.`, {
      hint: 'A site never goes back to an older release this way. To undo an upgrade, restore the backups listed in its report.',
      meta,
    });
  }
  if (manifest.minFrom !== null && semver.lt(installed.version, manifest.minFrom)) {
    throw new FlotillaError('FLO_BUNDLE_TOO_NEW', `${manifest.product} ${manifest.version} upgrades from ${manifest.minFrom} or later, and this site has ${installed.version}.`, {
      hint: `Apply the releases between first (at least ${manifest.minFrom}), then this one. Ask your vendor for them.`,
      meta: { ...meta, minFrom: manifest.minFrom },
    });
  }
}

function notRun(tenant: Tenant, status: TenantApplyReport['status'], note: string | null): TenantApplyReport {
  return {
    tenant: tenant.slug,
    kind: tenant.kind,
    status,
    versionBefore: null,
    versionAfter: null,
    tablesBefore: null,
    rowsBefore: null,
    tablesAfter: null,
    rowsAfter: null,
    rowsIntact: null,
    rowDifferences: [],
    backupId: null,
    durationMs: 0,
    error: null,
    restoreCommand: null,
    note,
  };
}

function errorOf(error: unknown): TenantApplyReport['error'] {
  const e = toFlotillaError(error);
  return { code: e.code, message: e.message, hint: e.hint ?? null };
}

function rowDifferences(before: Record<string, number>, after: Record<string, number>): string[] {
  return Object.entries(before).flatMap(([table, n]) =>
    after[table] === undefined ? [`${table}: ${n} rows before, table gone after`] : after[table]! < n ? [`${table}: ${n} rows before, ${after[table]} after`] : [],
  );
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function nextSteps(failed: boolean, tenants: readonly TenantApplyReport[], previous: string | null): string[] {
  if (!failed) return [];
  const steps = tenants
    .filter((t) => t.status === 'failed')
    .map((t) => `${t.tenant} is still at version ${t.versionBefore ?? '(none)'}${t.rowsIntact ? ' with all its rows' : ''}: nothing of this release was applied to it.`);
  steps.push(`The application was not updated: it still runs ${previous ? `release ${previous}` : 'the release installed before'}.`);
  steps.push("Send this report (the .json and .txt files) to your vendor's support. Once they send a fixed bundle, apply it: tenants already upgraded are left as they are.");
  return steps;
}
