import type pg from 'pg';
import { randomUUID } from 'node:crypto';
import { FlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { ParsedMigration } from '../core/migration.js';
import { plan as planMigrations, planProblemsToError } from '../core/plan.js';
import type { Phase, ScheduledStatement, Split } from '../core/schedule.js';
import { schedule } from '../core/schedule.js';
import { planForSchemaTenant } from '../core/schema-tenant-plan.js';
import { quoteIdent } from '../core/sql/quote.js';
import { withTenantLock } from './advisory-lock.js';
import { connect } from './connect.js';
import { ensureHistoryTable, readHistory, recordHistory } from './history.js';
import { dropInvalidIndex, indexState } from './index-state.js';

/** Where one tenant's schema lives. */
export interface MigrationTarget {
  /** The tenant's slug (or another label) for messages. */
  readonly tenant: string;
  readonly serverUrl: string;
  readonly database: string;
  /** Holds the history table; unqualified names land here (`public` for a database tenant). */
  readonly schema: string;
  /** For schema tenants: each schema named by migrations → the tenant's own schema. */
  readonly schemaMap?: ReadonlyMap<string, string>;
  /** Create `schema` if missing (the control plane's own schema); tenants' schemas are made at provisioning. */
  readonly createSchema?: boolean;
}

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
}

export interface TargetResult {
  readonly tenant: string;
  readonly status: 'succeeded' | 'skipped' | 'planned';
  readonly fromVersion: string | null;
  readonly toVersion: string | null;
  /** Migrations run (or, in a dry run, to run), by id. */
  readonly migrations: readonly string[];
  readonly statements: number;
  /** Statements rewritten for a schema tenant. */
  readonly rewritten: number;
  readonly transactions: number;
  readonly outsideTransaction: number;
  readonly splits: readonly Split[];
  readonly durationMs: number;
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
  const client = await connect(target.serverUrl, target.database, `flotilla migrate ${runId}`);
  try {
    await client.query(`SELECT set_config('statement_timeout', $1, false)`, [options.statementTimeout ?? ENGINE_DEFAULTS.statementTimeout]);
    return await withTenantLock(
      client,
      { schema: target.schema, tenant: target.tenant, waitMs: options.lockWaitMs ?? ENGINE_DEFAULTS.lockWaitMs, lockTimeout },
      async () => {
        if (target.createSchema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(target.schema)}`);
        else await assertSchemaExists(client, target);
        await ensureHistoryTable(client, target.schema);
        const applied = await readHistory(client, target.schema);
        const planned = planMigrations(set.migrations, applied, { allowOutOfOrder: options.allowOutOfOrder, target: options.target });
        if (!planned.ok) throw planProblemsToError(planned.problems, target.tenant);
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
        };
        if (plan.steps.length === 0) return { ...base, transactions: 0, status: 'skipped', durationMs: performance.now() - started };
        if (options.dryRun) return { ...base, status: 'planned', durationMs: performance.now() - started };
        const resumed = new Set(plan.steps.filter((s) => s.resumed).map((s) => s.migration.id));
        const context = { client, target, runId, appliedBy: options.appliedBy ?? defaultUser(), resumed };
        for (const phase of phases) await runPhase(phase, context);
        return { ...base, status: 'succeeded', durationMs: performance.now() - started };
      },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface RunContext {
  readonly client: pg.Client;
  readonly target: MigrationTarget;
  readonly runId: string;
  readonly appliedBy: string;
  readonly resumed: ReadonlySet<string>;
}

async function runPhase(phase: Phase, context: RunContext): Promise<void> {
  const { client, target } = context;
  const durations = new Map<string, number>();
  const record = () => recordHistory(client, target.schema, phase.history, { ...context, durations });
  if (phase.kind === 'transaction') {
    await client.query('BEGIN');
    try {
      await client.query(`SELECT set_config('search_path', $1, true)`, [quoteIdent(target.schema)]);
      for (const item of phase.statements) await runStatement(item, context, durations);
      await record();
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return;
  }
  await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(target.schema)]);
  if (await indexAlreadyBuilt(phase.statement, context)) {
    await record();
    return;
  }
  await runStatement(phase.statement, context, durations);
  await record();
}

/**
 * Before a non-transactional index build: drop what a failed earlier attempt
 * left INVALID, and when resuming, treat a valid index of that name as done (the
 * build succeeded but the crash came before its history row was written).
 */
async function indexAlreadyBuilt({ migration, statement }: ScheduledStatement, context: RunContext): Promise<boolean> {
  const body = statement.node.IndexStmt;
  if (!body || typeof body !== 'object' || Array.isArray(body) || !body.concurrent || typeof body.idxname !== 'string') return false;
  const relation = body.relation as { schemaname?: string } | undefined;
  const schema = relation?.schemaname ?? context.target.schema;
  const state = await indexState(context.client, schema, body.idxname);
  if (state === 'invalid') {
    await dropInvalidIndex(context.client, schema, body.idxname);
    return false;
  }
  return state === 'valid' && context.resumed.has(migration.id);
}

async function runStatement({ migration, statement }: ScheduledStatement, context: RunContext, durations: Map<string, number>): Promise<void> {
  const started = performance.now();
  try {
    await context.client.query(statement.sql);
  } catch (cause) {
    throw statementError(cause, migration, statement.line, statement.sql, context.target.tenant);
  }
  durations.set(migration.id, (durations.get(migration.id) ?? 0) + performance.now() - started);
}

function statementError(cause: unknown, migration: ParsedMigration, line: number, sql: string, tenant: string): FlotillaError {
  const pgError = cause as { message?: string; code?: string; position?: string; detail?: string };
  // No SQLSTATE: the session itself broke (server stopped, network), not the statement.
  if (!pgError.code || /^(08|57P0)/.test(pgError.code) || /^E[A-Z]+$/.test(pgError.code)) {
    return new FlotillaError('FLO_CONNECTION_FAILED', `Tenant ${tenant}: the connection was lost at ${migration.path}:${line}: ${pgError.message ?? String(cause)}`, {
      hint: 'PostgreSQL rolled the open transaction back, so the tenant is as it was before it. Check the server, then run migrate again: it resumes where the tenant is.',
      meta: { tenant, file: migration.path, line, migration: migration.id, sqlstate: pgError.code ?? null },
      cause,
    });
  }
  const position = Number(pgError.position);
  const errorLine = Number.isFinite(position) && position > 0 ? line + (sql.slice(0, position - 1).match(/\n/g)?.length ?? 0) : line;
  const message = pgError.message ?? String(cause);
  return new FlotillaError(
    'FLO_MIGRATION_FAILED',
    `Tenant ${tenant}: ${migration.path}:${errorLine}: ${message}${pgError.detail ? ` (${pgError.detail})` : ''}`,
    {
      hint: 'Nothing of this transaction was kept: the tenant is as it was before it. Fix the migration (or the data it trips on) and run migrate again.',
      meta: {
        tenant,
        file: migration.path,
        line: errorLine,
        migration: migration.id,
        sqlstate: pgError.code ?? null,
        postgresMessage: message,
        statement: sql.length > 500 ? `${sql.slice(0, 500)}…` : sql,
      },
      cause,
    },
  );
}

async function assertSchemaExists(client: pg.Client, target: MigrationTarget): Promise<void> {
  const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [target.schema]);
  if (rows.length === 0) {
    throw new FlotillaError('FLO_TENANT_NOT_FOUND', `Tenant ${target.tenant}: schema "${target.schema}" does not exist in database "${target.database}".`, {
      hint: 'The tenant was removed outside Flotilla: restore it, or archive it in the registry.',
      meta: { tenant: target.tenant, schema: target.schema, database: target.database },
    });
  }
}

function defaultUser(): string {
  return process.env.USER ?? process.env.USERNAME ?? 'unknown';
}
