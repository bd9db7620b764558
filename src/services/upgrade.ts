import type { AuditEventInput } from '../control/audit-log.js';
import { backupRisks } from '../core/backup-risk.js';
import { FlotillaError, toFlotillaError } from '../core/errors.js';
import type { Finding, LintReport } from '../core/lint/lint.js';
import { compareVersions } from '../core/migration-file.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import type { BackupDecision, MigrateOptions, MigrateReport, TenantOutcome } from '../core/outcomes.js';
import type { PendingPart } from '../core/schedule.js';
import type { MigrationTarget, TargetResult } from '../core/target.js';
import type { Server, Tenant } from '../core/tenant.js';
import { describeLoss, describeOverwrite } from '../core/verification.js';
import type { EngineOptions } from '../engine/migrate-target.js';
import { migrateTarget } from '../engine/migrate-target.js';
import { tenancyModel } from '../tenancy/models.js';
import type { ServiceContext } from './context.js';
import { engineOptions } from './context.js';
import { blockingFindings, lintOptions } from './lint-options.js';

/** What every tenant upgrade of one command shares: the migrations, their lint, the servers, what the registry records. */
export interface UpgradeContext {
  readonly set: MigrationSet;
  readonly servers: ReadonlyMap<string, Server>;
  readonly lint: LintReport;
  readonly lintErrors: ReadonlyMap<string, readonly Finding[]>;
  /** The schemas and roles the registry records as each tenant's own, by tenant id. */
  readonly known: ReadonlyMap<string, { schemas: readonly string[]; roles: readonly string[] }>;
}

export interface UpgradeRun {
  readonly runId: string;
  readonly op: OperationContext;
  readonly dryRun: boolean;
  readonly allowOutOfOrder?: boolean;
  readonly target?: string;
  /** A rollout has marked the tenant `upgrading` when it claimed it; otherwise this upgrade does, and puts it back. */
  readonly claimedByRollout: boolean;
}

/**
 * The one per-tenant upgrade path, for the library's migrate() and for every
 * rollout: the tenant marked `upgrading` for its time, the lint gate, a backup
 * when the policy asks for one, the engine (all-or-nothing, verified), and its
 * audit event under the caller's actor.
 */
export class UpgradeService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Migrates the selected tenants one after another; a result per tenant, never a throw for one tenant's failure. */
  async migrate(options: MigrateOptions): Promise<MigrateReport> {
    const { registry, operations } = this.ctx;
    const args = { tenants: options.tenants, all: options.all, dryRun: options.dryRun, target: options.target, allowOutOfOrder: options.allowOutOfOrder };
    return operations.run({ command: 'migrate', arguments: args }, async (op) => {
      const set = await this.ctx.migrations.current();
      assertTarget(set, options.target);
      const selected = options.all ? await registry.listTenants() : await Promise.all((options.tenants ?? []).map((slug) => registry.getTenant(slug)));
      const context = await this.context(set, selected);
      const outcomes: TenantOutcome[] = [];
      for (const tenant of selected) {
        const run = { runId: op.id, op, dryRun: options.dryRun === true, allowOutOfOrder: options.allowOutOfOrder, target: options.target, claimedByRollout: false };
        const outcome = await this.upgradeTenant(tenant, context, run);
        outcomes.push(outcome);
        options.onTenant?.(outcome);
      }
      const report = {
        runId: op.id,
        outcomes,
        succeeded: outcomes.filter((o) => o.status === 'succeeded' || o.status === 'planned').length,
        failed: outcomes.filter((o) => o.status === 'failed').length,
        skipped: outcomes.filter((o) => o.status === 'skipped').length,
      };
      return { result: report, record: { runId: op.id, ...endOfRun(report.failed, outcomes.length) } };
    });
  }

  /** What the upgrades of these tenants share, read once. */
  async context(set: MigrationSet, tenants: readonly Tenant[]): Promise<UpgradeContext> {
    const { registry, config } = this.ctx;
    const servers = new Map((await registry.listServers()).map((s) => [s.name, s]));
    const shared = config.lint.schemaTenants ?? tenants.some((t) => tenancyModel(t.kind).sharesDatabase);
    const lint = this.ctx.migrations.lint(set, lintOptions(config, shared));
    // One query each for every tenant's recorded schemas and roles: an upgrade claims what its migrations create only when some are new.
    const ids = tenants.map((t) => t.id);
    const schemas = ids.length > 0 ? await registry.storage.schemasOfTenants(ids) : new Map<string, string[]>();
    const roles = ids.length > 0 ? await registry.storage.schemasOfTenants(ids, 'role') : new Map<string, string[]>();
    const known = new Map(tenants.map((t) => [t.id, { schemas: schemas.get(t.id) ?? [], roles: roles.get(t.id) ?? [] }]));
    return { set, servers, lint, lintErrors: blockingFindings(lint), known };
  }

  /** One tenant's upgrade. Never throws for the tenant's own failure: that is its outcome. */
  async upgradeTenant(tenant: Tenant, context: UpgradeContext, run: UpgradeRun): Promise<TenantOutcome> {
    const started = performance.now();
    let outcome: TenantOutcome;
    let marked: { previous: Tenant['status'] } | undefined;
    try {
      if (!run.claimedByRollout && !run.dryRun) {
        const { previous, changed } = await run.op.setTenantStatus(tenant.slug, 'upgrading', ['provisioning', 'restoring', 'upgrading', 'suspended', 'archived']);
        if (changed) marked = { previous };
        tenant = { ...tenant, status: changed ? 'upgrading' : previous };
      }
      if (tenant.status !== 'active' && tenant.status !== 'upgrading') {
        outcome = { tenant: tenant.slug, status: 'skipped', reason: `tenant is ${tenant.status}`, durationMs: 0 };
      } else {
        const server = context.servers.get(tenant.server)!;
        const model = tenancyModel(tenant.kind);
        const engine: EngineOptions = {
          ...engineOptions(this.ctx),
          lintErrors: context.lintErrors,
          runId: run.runId,
          target: run.target,
          allowOutOfOrder: run.allowOutOfOrder ?? this.ctx.config.engine.allowOutOfOrder,
          session: model.session(tenant, server, this.ctx.sessions),
          dryRun: run.dryRun,
        };
        await model.prepareUpgrade(tenant, server, context.set, this.ctx.storage, { known: context.known.get(tenant.id) ?? {}, checkOnly: run.dryRun });
        outcome = await this.migrateWithBackup(tenant, server, model.target(tenant, server, context.set), engine, context, run.op.id);
      }
    } catch (error) {
      // Whatever failed (the server gone between lock and BEGIN, mid-transaction, between phases) is this tenant's outcome, never a throw.
      outcome = { tenant: tenant.slug, status: 'failed', error: naming(tenant.slug, toFlotillaError(error)), durationMs: performance.now() - started };
    } finally {
      if (marked) await run.op.restoreTenantStatus(tenant.slug, 'upgrading', marked.previous).catch(() => undefined);
    }
    const flags = { runId: run.runId, dryRun: run.dryRun, allowOutOfOrder: run.allowOutOfOrder === true };
    await this.ctx.operations.record({ ...auditOfOutcome(outcome, flags), operationId: run.op.id });
    return outcome;
  }

  /**
   * The engine's run with the backup policy applied to its plan, under the
   * tenant's lock, just before anything runs. A dump is taken there; a snapshot
   * needs the database free of sessions, so the engine stops, the snapshot is
   * taken, and the engine plans again.
   */
  private async migrateWithBackup(
    tenant: Tenant,
    server: Server,
    target: MigrationTarget,
    engine: EngineOptions,
    context: UpgradeContext,
    operationId: string,
  ): Promise<TargetResult & { backup: BackupDecision | null }> {
    const { config, backups } = this.ctx;
    const backup = { reasons: null as readonly string[] | null, id: null as string | null, snapshotFirst: false };
    const take = async () => {
      const reason = `before migrate: ${backup.reasons!.join('; ')}`;
      backup.id = (await backups.backup(tenant, server, context.set, { id: operationId }, { reason, runId: engine.runId })).id;
    };
    const beforeApply = async (pending: readonly PendingPart[], catalogRisks: readonly string[]): Promise<'apply' | 'stop'> => {
      backup.reasons = backupReasons(config.backup.policy, pending, context.lint, catalogRisks);
      if (!backup.reasons || engine.dryRun) return 'apply';
      // A snapshot copies the database only while nobody, this session included, is connected.
      backup.snapshotFirst = tenancyModel(tenant.kind).snapshots && config.backup.strategy === 'snapshot';
      if (backup.snapshotFirst) return 'stop';
      await take();
      return 'apply';
    };
    let result = await migrateTarget(target, context.set, { ...engine, beforeApply: config.backup.policy === 'never' ? undefined : beforeApply });
    if (backup.snapshotFirst) {
      await take();
      result = await migrateTarget(target, context.set, { ...engine, beforeApply: undefined });
    }
    return { ...result, backup: backup.reasons ? { reasons: backup.reasons, id: backup.id } : null };
  }
}

/** The error as the tenant's outcome: its message names the tenant (a connection lost before the engine began does not). */
function naming(slug: string, error: FlotillaError): FlotillaError {
  if (error.message.includes(slug)) return error;
  const options = { hint: error.hint, meta: { ...error.meta, tenant: slug }, cause: error.cause ?? error };
  return new FlotillaError(error.code, `Tenant ${slug}: ${error.message}`, options as never);
}

/**
 * Whether the backup policy asks for a backup before running `pending`, and
 * why: `always`; or `risky` when it could remove or rewrite existing data
 * beyond what the transaction and verification protect (see backupRisks).
 * Null: no backup.
 */
function backupReasons(policy: string, pending: readonly PendingPart[], lint: LintReport, catalogRisks: readonly string[]): readonly string[] | null {
  if (policy === 'never') return null;
  if (policy === 'always') return ['policy: always'];
  const risks = [...backupRisks(pending, lint), ...catalogRisks];
  return risks.length > 0 ? risks : null;
}

/** Refuses a target version that no migration has: a target of 9999 must not mean "everything". */
export function assertTarget(set: MigrationSet, target: string | undefined): void {
  if (target === undefined) return;
  if (!/^\d{1,40}$/.test(target)) {
    throw new FlotillaError('FLO_USAGE', `Target version ${JSON.stringify(target.slice(0, 60))} is not a version: versions are digits, as in the migration file names.`, {
      hint: 'Give the version of an existing migration, for example 0003 for 0003_add_loans.sql.',
      meta: { target: target.slice(0, 60) },
    });
  }
  if (!set.migrations.some((m) => compareVersions(m.version, target) === 0)) {
    const newest = set.migrations.at(-1)?.version ?? null;
    throw new FlotillaError('FLO_VERSION_NOT_FOUND', `No migration has version ${target}${newest ? ` (the newest is ${newest})` : ' (there are no migrations)'}.`, {
      hint: 'Give the version of an existing migration, or leave the target out to upgrade to the newest.',
      meta: { target, newest },
    });
  }
}

/** The end of a command that upgraded tenants: failed when any tenant failed. */
export function endOfRun(failed: number, total: number): Partial<AuditEventInput> {
  return failed > 0 ? { outcome: 'failed', errorMessage: `${failed} of ${total} tenant${total > 1 ? 's' : ''} failed` } : {};
}

function auditOfOutcome(outcome: TenantOutcome, context: { runId: string; dryRun: boolean; allowOutOfOrder: boolean }): AuditEventInput {
  const base = {
    command: 'migrate',
    arguments: { dryRun: context.dryRun, allowOutOfOrder: context.allowOutOfOrder },
    tenant: outcome.tenant,
    durationMs: outcome.durationMs,
    runId: context.runId,
  };
  if (outcome.status === 'failed') return { ...base, outcome: 'failed', errorCode: outcome.error.code, errorMessage: outcome.error.message };
  if ('reason' in outcome) return { ...base, outcome: 'skipped', errorMessage: outcome.reason };
  const verification = outcome.verification;
  const details = verification
    ? {
        tablesVerified: verification.tables,
        allowedLosses: verification.allowedLosses.map((l) => `${describeLoss(l)} — ${l.allowedBecause}`),
        overwrites: verification.overwrites.map(describeOverwrite),
      }
    : null;
  return {
    ...base,
    outcome: outcome.status,
    versionBefore: outcome.fromVersion,
    versionAfter: outcome.status === 'planned' ? outcome.fromVersion : outcome.toVersion,
    backupId: outcome.backup?.id ?? null,
    details,
  };
}
