import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { BundleInstall } from '../control/bundle-installs.js';
import { APP_FOLDER, MIGRATIONS_FOLDER } from '../core/bundle/manifest.js';
import type { VerifiedBundle } from '../core/bundle/verify.js';
import { assertNotExpired, wasVerified } from '../core/bundle/verify.js';
import { FlotillaError, toFlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import type { TenantOutcome } from '../core/outcomes.js';
import type { Server, Tenant } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { countLosses, countScopeRows, totalRows } from '../postgres/row-counts.js';
import { tenancyModel } from '../tenancy/models.js';
import { checkEnvironment } from './bundle-environment.js';
import { installFolder } from './bundle-payload.js';
import { errorOf, nextSteps, notRun } from './bundle-report.js';
import { assertNewer, assertProduct, assertSiteTargets, installedRelease } from './bundle-rules.js';
import { schemaVersion } from './backup-service.js';
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

  async apply(bundle: VerifiedBundle, options: { onTenant?: (tenant: TenantApplyReport) => void; allowNewKey?: boolean } = {}): Promise<ApplyResult> {
    if (!wasVerified(bundle)) {
      throw new FlotillaError('FLO_USAGE', 'apply() takes a bundle returned by verifyBundleFile() or verifyBundle(), and this one was not.', {
        hint: "Verify the bundle file with the vendor's public key first, then pass what that returned.",
      });
    }
    assertNotExpired(bundle.manifest, new Date());
    // One apply at a time per site; every check is made under that lock, against the history as it is then.
    return this.ctx.registry.bundles.exclusively(() => this.applyAlone(bundle, options));
  }

  private async applyAlone(bundle: VerifiedBundle, options: { onTenant?: (tenant: TenantApplyReport) => void; allowNewKey?: boolean }): Promise<ApplyResult> {
    const startedAt = new Date();
    const { manifest } = bundle;
    const { config, registry } = this.ctx;
    const history = await registry.bundles.list();
    const product = assertProduct(manifest, config.bundles.product, history);
    const previous = installedRelease(history, product);
    assertNewer(manifest, previous, options);
    const source = new BundleSource(bundle.files);
    const set = await source.current();
    await assertSiteTargets(config);
    const tenants = (await registry.listTenants()).sort((a, b) => (a.slug < b.slug ? -1 : 1));
    const servers = new Map((await registry.listServers()).map((s) => [s.name, s]));
    const environment = await checkEnvironment(tenants, servers, config.backup.dir);
    // The bundle's migrations, and no backup by policy: every tenant is backed up just before, whatever the policy.
    const upgrade = new UpgradeService({ ...this.ctx, migrations: source, config: { ...config, backup: { ...config.backup, policy: 'never' } } });
    const args = { product, version: manifest.version, digest: bundle.digest };
    const reports = await this.ctx.operations.run({ command: 'bundle apply', arguments: args }, async (op) => {
      const context = await upgrade.context(
        set,
        tenants.filter((t) => t.status === 'active'),
      );
      // Planned first, for every tenant, before any backup: a release that does not fit what a tenant holds
      // (a migration it applied that the release changed, a lint error) is refused with nothing changed.
      for (const tenant of tenants.filter((t) => t.status === 'active')) {
        const planned = await upgrade.upgradeTenant(tenant, context, { runId: op.id, op, dryRun: true, claimedByRollout: false });
        if (planned.status === 'failed') throw misfit(tenant.slug, planned.error);
      }
      const results: TenantApplyReport[] = [];
      let stopped = false;
      for (const tenant of tenants) {
        const result: TenantApplyReport =
          tenant.status !== 'active'
            ? notRun(tenant, 'skipped', `the tenant is ${tenant.status}`)
            : stopped
              ? notRun(tenant, 'not started', 'an earlier tenant failed, so the apply stopped before this one')
              : await this.upgradeOne(tenant, servers.get(tenant.server)!, set, op, `before bundle ${product} ${manifest.version}`, (t) =>
                  upgrade.upgradeTenant(t, context, { runId: op.id, op, dryRun: false, claimedByRollout: false }),
                );
        // A tenant that failed, or lost rows, stops the apply: the ones after it keep their version.
        stopped ||= result.status === 'failed' || result.rowsIntact === false;
        results.push(result);
        options.onTenant?.(result);
      }
      return { result: results, record: { runId: op.id, ...(stopped ? { outcome: 'failed' as const, errorMessage: 'a tenant failed' } : {}) } };
    });
    let failed: string | null = reports.some((r) => r.status === 'failed' || r.rowsIntact === false) ? 'a tenant failed' : null;
    let app: ApplyReport['app'] = { installed: false, dir: config.bundles.appDir ?? null, files: 0, note: null };
    try {
      // The site's migrations become the release's, so that status and later commands know what the tenants hold.
      if (!failed) await installFolder(bundle.files, MIGRATIONS_FOLDER, config.migrationsDir);
      app = await this.payload(bundle, failed !== null);
    } catch (error) {
      failed = `installing its files failed: ${toFlotillaError(error).message}`;
      app = { ...app, note: failed };
    }
    const finishedAt = new Date();
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
      restoreCommands: reports.flatMap((r) => (r.restoreCommand ? [r.restoreCommand] : [])),
      nextSteps: nextSteps(failed, reports, previous?.version ?? null),
    };
    const id = randomUUID();
    // Recorded whatever happens to the report's files: the history must say what the tenants now hold.
    try {
      return { report, files: await writeReport(report, config.bundles.reportsDir, config.bundles.siteKey, id) };
    } finally {
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
    }
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
    const now = await this.tenantNow(tenant, server, set).catch(() => undefined);
    const after = now?.counts;
    const before = backup.rowCounts;
    const differences = after ? countLosses(before, after) : ['rows could not be counted after the upgrade'];
    const ok = outcome.status !== 'failed';
    return {
      ...base,
      status: !ok ? 'failed' : 'migrations' in outcome && outcome.migrations.length > 0 ? 'upgraded' : 'unchanged',
      versionBefore: backup.schemaVersion,
      // Read from the tenant itself, not inferred: what it holds now, whatever happened.
      versionAfter: now ? now.version : ok && 'toVersion' in outcome ? outcome.toVersion : null,
      tablesBefore: Object.keys(before).length,
      rowsBefore: totalRows(before),
      tablesAfter: after ? Object.keys(after).length : null,
      rowsAfter: after ? totalRows(after) : null,
      rowsIntact: differences.length === 0,
      rowDifferences: differences,
      backupId: backup.id,
      durationMs: performance.now() - started,
      error: outcome.status === 'failed' ? errorOf(outcome.error) : null,
      restoreCommand: `flotilla restore ${tenant.slug} --backup ${backup.id}`,
    };
  }

  /** The tenant's rows and version as they are now, counted as its backup counted them. */
  private async tenantNow(tenant: Tenant, server: Server, set: MigrationSet) {
    const scope = await tenancyModel(tenant.kind).backupScope(tenant, server, set, this.ctx.storage);
    return withClient(server.url, tenant.database, async (client) => ({
      counts: await countScopeRows(client, scope),
      version: await schemaVersion(client, tenant.schema),
    }));
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

function misfit(tenant: string, error: FlotillaError): FlotillaError {
  return new FlotillaError('FLO_BUNDLE_MISMATCH', `This release does not fit tenant ${tenant}: ${error.message}`, {
    hint: "Nothing was changed. Send this message to your vendor's support: the release does not match what this site's tenants already hold.",
    meta: { tenant, cause: error.code },
    cause: error,
  });
}
