import type pg from 'pg';
import { randomUUID } from 'node:crypto';
import { FlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { ParsedMigration } from '../core/migration.js';
import { plan as planMigrations, planProblemsToError } from '../core/plan.js';
import type { Plan } from '../core/plan.js';
import type { PendingPart, Phase } from '../core/schedule.js';
import { planStatements, relationsRun } from '../core/verification.js';
import type { Finding } from '../core/lint/lint.js';
import { effectsThroughExistingObjects } from '../postgres/fingerprint.js';
import { ownsSchema, ownTenantSchemas, TenantRunner } from '../postgres/tenant-role.js';
import { Verifier } from './verifier.js';
import { pendingParts, schedule } from '../core/schedule.js';
import { planForSchemaTenant } from '../core/schema-tenant-plan.js';
import type { RunContext } from './run-context.js';
import { tenantSchemas } from './run-context.js';
import { indexAlreadyBuilt, namedIndexBuild, runStatement } from './statement-runner.js';
import { runVerifyFiles } from './verify-files.js';
import { describePhase, phaseError } from './phase-errors.js';
import { catalogPathOnly, createSchemaIfMissing, inSchemaTransaction, prepareSession, useSchema } from '../postgres/target-session.js';
import { withTenantLock } from '../postgres/advisory-lock.js';
import { connect } from '../postgres/connect.js';
import type { SessionSource } from '../postgres/session-pools.js';
import type { MigrationTarget, TargetResult } from '../core/target.js';
export type { MigrationTarget, TargetResult };
import { ensureHistoryTable, readHistory, recordHistory } from '../postgres/history.js';
import { schemaExists } from '../postgres/provision.js';

export interface EngineOptions {
  readonly runId?: string;
  readonly appliedBy?: string;
  /** How long to wait for another session migrating the same tenant. */
  readonly lockWaitMs?: number;
  /** PostgreSQL `lock_timeout` for each statement, e.g. `10s`. */
  readonly lockTimeout?: string;
  /** PostgreSQL `statement_timeout` for each statement, e.g. `15min`; `0` for none. */
  readonly statementTimeout?: string;
  readonly allowOutOfOrder?: boolean;
  readonly target?: string;
  /** Plan only: read history, plan and schedule, change nothing. */
  readonly dryRun?: boolean;
  /** Compare the affected tables before commit (default on); overwritten values reported, or refused unless allowed. */
  readonly verify?: { readonly enabled: boolean; readonly checksumMaxRows: number; readonly values?: 'report' | 'refuse' };
  /** Unallowed lint errors per migration id: a pending migration with any is refused. */
  readonly lintErrors?: ReadonlyMap<string, readonly Finding[]>;
  /**
   * Called under the tenant's lock once the plan is known, before anything runs,
   * with the migrations about to be applied and what the tenant's catalog adds
   * to their effects (triggers and rules on the tables they change); a backup is
   * taken here; in a dry run too, which stops there anyway. `stop` ends the
   * upgrade there, unchanged, with status `planned`.
   */
  readonly beforeApply?: (pending: readonly PendingPart[], catalogRisks: readonly string[]) => Promise<'apply' | 'stop'>;
  /** Where the session comes from (a pool, for schema tenants sharing a database); default: a new connection. */
  readonly session?: SessionSource;
}

/** A new connection per upgrade, closed afterwards. */
export function ownConnection(target: MigrationTarget): SessionSource {
  return async (applicationName) => {
    const client = await connect(target.serverUrl, target.database, applicationName);
    return { client, release: () => client.end().catch(() => undefined) };
  };
}

export const ENGINE_DEFAULTS = {
  lockWaitMs: 30_000,
  lockTimeout: '10s',
  statementTimeout: '15min',
} as const;

/**
 * Brings one tenant to the newest migration: lock, read history, plan, then run
 * every transactional statement in one transaction with the history rows, and
 * statements that cannot run in a transaction after it, each recorded.
 */
export async function migrateTarget(target: MigrationTarget, set: MigrationSet, options: EngineOptions = {}): Promise<TargetResult> {
  const started = performance.now();
  const runId = options.runId ?? randomUUID();
  const lockTimeout = options.lockTimeout ?? ENGINE_DEFAULTS.lockTimeout;
  const session = await (options.session ?? ownConnection(target))(`flotilla migrate ${runId}`);
  const client = session.client;
  try {
    // A tenant's functions must not stand in for built-in ones in Flotilla's own queries (and run as
    // Flotilla, or fool verification): those run with pg_catalog alone on the path; the tenant's statements get its schema.
    await prepareSession(client, { statementTimeout: options.statementTimeout ?? ENGINE_DEFAULTS.statementTimeout, applicationName: `flotilla migrate ${runId}` });
    return await withTenantLock(client, { schema: target.schema, tenant: target.tenant, waitMs: options.lockWaitMs ?? ENGINE_DEFAULTS.lockWaitMs, lockTimeout }, async () => {
      if (target.createSchema) await createSchemaIfMissing(client, target.schema);
      // One round trip in the usual case: the history is there (so is the schema).
      let applied = await readHistory(client, target.schema).catch((error: { code?: string }) => {
        if (error.code !== '42P01') throw error;
        return undefined;
      });
      if (applied === undefined) {
        if (!target.createSchema) await assertSchemaExists(client, target);
        // A dry run changes nothing, not even the history table of a tenant that has none yet.
        if (!options.dryRun) await ensureHistoryTable(client, target.schema);
        applied = [];
      }
      const planned = planMigrations(set.migrations, applied, { allowOutOfOrder: options.allowOutOfOrder, target: options.target });
      if (!planned.ok) throw planProblemsToError(planned.problems, target.tenant);
      refuseLintErrors(planned.plan, options.lintErrors, target.tenant);
      const { plan, rewritten } = target.schemaMap ? planForSchemaTenant(planned.plan, target.schemaMap) : { plan: planned.plan, rewritten: 0 };
      const { phases, splits } = schedule(plan);
      const base = {
        tenant: target.tenant,
        fromVersion: plan.currentVersion,
        toVersion: plan.targetVersion,
        migrations: plan.steps.map((s) => s.migration.id),
        statements: plan.steps.reduce((n, s) => n + s.statements.length, 0),
        rewritten,
        transactions: phases.filter((p) => p.kind === 'transaction').length,
        outsideTransaction: phases.filter((p) => p.kind === 'outside').length,
        splits,
        verification: null,
      };
      if (plan.steps.length === 0) return { ...base, transactions: 0, status: 'skipped', durationMs: performance.now() - started };
      // Asked once for the plan: the backup decision and verification both use it.
      const verify = options.verify ?? { enabled: true, checksumMaxRows: 100_000 };
      const catalogRisks = options.beforeApply || verify.enabled ? await existingEffects(client, target, plan) : [];
      const go = options.beforeApply ? await options.beforeApply(pendingParts(planned.plan), catalogRisks) : 'apply';
      if (options.dryRun || go === 'stop') return { ...base, status: 'planned', mayOverwrite: mayOverwrite(plan), durationMs: performance.now() - started };
      // What the tenant holds becomes its role's (made before roles, restored, or Flotilla's own history table).
      if (target.role && !(await ownsSchema(client, target.role, target.schema))) await ownTenantSchemas(client, target.role, tenantSchemas(target)!);
      const resumed = new Set(plan.steps.filter((s) => s.resumed).map((s) => s.migration.id));
      // A schema tenant's functions must not stand in for the built-in ones in Flotilla's own queries,
      // and the expressions of its migrations are evaluated as its role.
      const runnerOf = () => TenantRunner.of(client, target.role!);
      const tenantGuards = { guard: catalogPathOnly(client), ...(target.role ? { countAsTenant: async (sql: string) => (await runnerOf()).count(sql) } : {}) };
      const verifier = verify.enabled
        ? new Verifier(client, {
            tenant: target.tenant,
            schemas: tenantSchemas(target),
            checksumMaxRows: verify.checksumMaxRows,
            values: verify.values ?? 'report',
            reachesThroughCatalog: catalogRisks.length > 0,
            ...tenantGuards,
          })
        : undefined;
      const lastTransaction = phases.filter((p) => p.kind === 'transaction').pop();
      const context: RunContext = {
        guard: tenantGuards.guard,
        client,
        target,
        runId,
        appliedBy: options.appliedBy ?? defaultUser(),
        resumed,
        plan,
        verifier,
        lastTransaction,
        sessionSearchPath: false,
        unrecorded: new Map(),
        durations: new Map(),
      };
      // What this run committed, phase by phase: a failure says exactly this much was kept.
      const kept: string[] = [];
      for (const [i, phase] of phases.entries()) {
        // Index builds in a row are recorded once, after the last: one commit instead of one each. A run
        // killed among them leaves them all remaining, and the resumed run finds each built one by its name.
        const next = phases[i + 1];
        const recordLater = phase.kind === 'outside' && next?.kind === 'outside' && namedIndexBuild(phase.statement) !== undefined && namedIndexBuild(next.statement) !== undefined;
        try {
          await runPhase(phase, context, recordLater);
        } catch (error) {
          throw phaseError(error, phase, { index: i, total: phases.length }, kept, target.tenant);
        }
        kept.push(describePhase(phase));
      }
      return { ...base, status: 'succeeded', durationMs: performance.now() - started, verification: verifier ? verifier.summary() : null };
    });
  } finally {
    await session.release();
  }
}

async function runPhase(phase: Phase, context: RunContext, recordLater = false): Promise<void> {
  const { client, target, durations } = context;
  const record = async () => {
    // Each update holds a migration's remaining statements after this phase: the newest one wins.
    for (const update of phase.history) context.unrecorded.set(update.migration, update);
    if (!recordLater) await context.guard(() => writeHistory(context));
  };
  if (phase.kind === 'transaction') {
    // A schema tenant's function is made before the transaction, so that it outlives one rolled back.
    context.runner = context.target.role ? await TenantRunner.of(client, context.target.role) : undefined;
    await inSchemaTransaction(client, target.schema, async () => {
      const verifier = context.verifier;
      await verifier?.begin(phase.statements.map((s) => s.statement));
      for (const item of phase.statements) {
        const run = () => runStatement(item, context, durations);
        if (verifier) await verifier.around(item.statement, run);
        else await run();
      }
      if (phase === context.lastTransaction) await runVerifyFiles(context);
      await context.verifier?.check();
      await record();
    });
    return;
  }
  if (!context.sessionSearchPath) {
    await useSchema(client, target.schema);
    context.sessionSearchPath = true;
  }
  // Outside a transaction nothing can be rolled back: a statement that may change data is compared
  // around, and a loss stops the upgrade there (the risky policy backed the tenant up first).
  const verifier = phase.statement.statement.keepsData ? undefined : context.verifier;
  try {
    if (!(await indexAlreadyBuilt(phase.statement, context))) {
      await verifier?.begin([phase.statement.statement]);
      context.runner = context.target.role ? await TenantRunner.of(client, context.target.role) : undefined;
      const run = () => runStatement(phase.statement, context, durations);
      if (verifier) await verifier.around(phase.statement.statement, run);
      else await run();
    }
  } catch (error) {
    // What ran before it is written down, when the session still works.
    await context.guard(() => writeHistory(context)).catch(() => undefined);
    throw error;
  }
  await record();
  // It ran and is recorded: a loss found now is reported with the backup to restore, not run again.
  await verifier?.check({ committed: true });
}

/** Writes the history of what ran since the last write, in one statement. */
async function writeHistory(context: RunContext): Promise<void> {
  if (context.unrecorded.size === 0) return;
  await recordHistory(context.client, context.target.schema, [...context.unrecorded.values()], context);
  context.unrecorded.clear();
  context.durations.clear();
}

/** Refuses a plan whose pending migrations hold lint errors no directive allows. */
function refuseLintErrors(plan: Plan<ParsedMigration>, lintErrors: ReadonlyMap<string, readonly Finding[]> | undefined, tenant: string): void {
  if (!lintErrors) return;
  const blocking = plan.steps.filter((s) => !s.resumed).flatMap((s) => lintErrors.get(s.migration.id) ?? []);
  if (blocking.length === 0) return;
  const list = blocking.slice(0, 5).map((f) => `${f.file}:${f.line} ${f.code} ${f.message}`);
  throw new FlotillaError(
    'FLO_LINT_REFUSED',
    `Tenant ${tenant}: ${blocking.length} lint error${blocking.length > 1 ? 's' : ''} in pending migrations, nothing applied:\n  ${list.join('\n  ')}${blocking.length > 5 ? `\n  … and ${blocking.length - 5} more (flotilla lint)` : ''}`,
    {
      hint: 'Change the migration as each finding suggests, or, if it is intended, put -- flotilla:allow <CODE> reason="why" on the line above the statement.',
      meta: { tenant, findings: blocking.map((f) => ({ code: f.code, file: f.file, line: f.line, message: f.message })) },
    },
  );
}

/** What a dry run says may overwrite existing values: statements that do, and those whose effect cannot be read. */
function mayOverwrite(plan: Plan<ParsedMigration>): string[] {
  return plan.steps.flatMap((step) =>
    step.statements
      .map((i) => step.migration.statements[i]!)
      .filter((s) => s.overwrites || s.unbounded !== undefined)
      .map((s) => `${s.unbounded ?? `${s.kind.replace(/Stmt$/, '').toUpperCase()} of ${s.writes.join(', ')}`} at ${step.migration.path}:${s.line}`),
  );
}

/**
 * Triggers and rules the tenant already has on the tables the plan's data
 * statements change: they fire during the upgrade and may change any table, so
 * the risky policy backs such an upgrade up. No query when no statement changes rows.
 */
async function existingEffects(client: pg.ClientBase, target: MigrationTarget, plan: Plan<ParsedMigration>): Promise<string[]> {
  const statements = planStatements(plan);
  const written = relationsRun(statements);
  const found = written.length > 0 ? await effectsThroughExistingObjects(client, tenantSchemas(target), written) : [];
  // A trigger or rule the plan itself creates fires on its later data statements.
  const created =
    statements.some((s) => s.changesLaterEffects) && written.length > 0 ? ['a trigger, rule or function made by these migrations, with data statements after it'] : [];
  return [...found.map((what) => `${what}, which fires on the upgrade's data statements`), ...created];
}

async function assertSchemaExists(client: pg.ClientBase, target: MigrationTarget): Promise<void> {
  if (!(await schemaExists(client, target.schema))) {
    throw new FlotillaError('FLO_TENANT_NOT_FOUND', `Tenant ${target.tenant}: schema "${target.schema}" does not exist in database "${target.database}".`, {
      hint: 'The tenant was removed outside Flotilla: restore it, or archive it in the registry.',
      meta: { tenant: target.tenant, schema: target.schema, database: target.database },
    });
  }
}

function defaultUser(): string {
  return process.env.USER ?? process.env.USERNAME ?? 'unknown';
}
