import type pg from 'pg';
import { randomUUID } from 'node:crypto';
import { FlotillaError, isFlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { ParsedMigration } from '../core/migration.js';
import { plan as planMigrations, planProblemsToError } from '../core/plan.js';
import type { Plan } from '../core/plan.js';
import type { HistoryUpdate, PendingPart, Phase, ScheduledStatement } from '../core/schedule.js';
import { isNode, stringField, unwrap } from '../core/sql/ast.js';
import { planStatements, relationsRun } from '../core/verification.js';
import type { Finding } from '../core/lint/lint.js';
import { effectsThroughExistingObjects } from '../postgres/fingerprint.js';
import { ownsSchema, ownTenantSchemas, TenantRunner } from '../postgres/tenant-role.js';
import { Verifier } from './verifier.js';
import { pendingParts, schedule } from '../core/schedule.js';
import { planForSchemaTenant } from '../core/schema-tenant-plan.js';
import { quoteIdent } from '../core/sql/quote.js';
import { nonTransactionalReason, selectIntoAsCreateTable } from '../core/sql/statement.js';
import { withTenantLock } from '../postgres/advisory-lock.js';
import { connect } from '../postgres/connect.js';
import type { SessionSource } from '../postgres/session-pools.js';
import type { MigrationTarget, TargetResult } from '../core/target.js';
export type { MigrationTarget, TargetResult };
import { ensureHistoryTable, readHistory, recordHistory } from '../postgres/history.js';
import { dropInvalidIndex, indexState } from '../postgres/index-state.js';
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
    await client.query(
      `SELECT pg_catalog.set_config('statement_timeout', $1, false), pg_catalog.set_config('application_name', $2, false), pg_catalog.set_config('search_path', 'pg_catalog', false)`,
      [options.statementTimeout ?? ENGINE_DEFAULTS.statementTimeout, `flotilla migrate ${runId}`],
    );
    return await withTenantLock(client, { schema: target.schema, tenant: target.tenant, waitMs: options.lockWaitMs ?? ENGINE_DEFAULTS.lockWaitMs, lockTimeout }, async () => {
      if (target.createSchema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(target.schema)}`);
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
      for (const [i, phase] of phases.entries()) {
        // Index builds in a row are recorded once, after the last: one commit instead of one each. A run
        // killed among them leaves them all remaining, and the resumed run finds each built one by its name.
        const next = phases[i + 1];
        const recordLater = phase.kind === 'outside' && next?.kind === 'outside' && namedIndexBuild(phase.statement) !== undefined && namedIndexBuild(next.statement) !== undefined;
        await runPhase(phase, context, recordLater);
      }
      return { ...base, status: 'succeeded', durationMs: performance.now() - started, verification: verifier ? verifier.summary() : null };
    });
  } finally {
    await session.release();
  }
}

interface RunContext {
  readonly client: pg.ClientBase;
  readonly target: MigrationTarget;
  readonly runId: string;
  readonly appliedBy: string;
  readonly resumed: ReadonlySet<string>;
  readonly plan: Plan<ParsedMigration>;
  readonly verifier: Verifier | undefined;
  readonly lastTransaction: Phase | undefined;
  /** The session's search_path is the tenant's (set once, for the statements outside transactions). */
  sessionSearchPath: boolean;
  /** History of statements outside the transaction that ran but is not written yet, by migration; their durations. */
  readonly unrecorded: Map<ParsedMigration, HistoryUpdate>;
  readonly durations: Map<string, number>;
  /** A schema tenant's statements run through this, as its role. */
  runner?: TenantRunner | undefined;
  /** Flotilla's own queries between the tenant's statements (pg_catalog alone on the path, for a schema tenant). */
  readonly guard: <T>(work: () => Promise<T>) => Promise<T>;
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
    await client.query('BEGIN');
    try {
      await client.query(`SELECT set_config('search_path', $1, true)`, [quoteIdent(target.schema)]);
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
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return;
  }
  if (!context.sessionSearchPath) {
    await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(target.schema)]);
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

/** A named CREATE INDEX CONCURRENTLY (its name, and its schema when written): whether it ran can be read from the catalog. */
function namedIndexBuild({ statement }: ScheduledStatement): { name: string; schema: string | undefined } | undefined {
  const body = statement.node.IndexStmt;
  if (!isNode(body) || body.concurrent !== true || typeof body.idxname !== 'string') return undefined;
  return { name: body.idxname, schema: isNode(body.relation) ? stringField(body.relation, 'schemaname') : undefined };
}

/**
 * Before a non-transactional index build: drop what a failed earlier attempt
 * left INVALID, and when resuming, treat a valid index of that name as done (the
 * build succeeded but the crash came before its history row was written).
 */
async function indexAlreadyBuilt(scheduled: ScheduledStatement, context: RunContext): Promise<boolean> {
  // An index build runs only after its migration's transaction committed with a history row, so a
  // failed earlier build always leaves a partly applied migration: only a resumed one needs the check.
  if (!context.resumed.has(scheduled.migration.id)) return false;
  const index = namedIndexBuild(scheduled);
  if (!index) return false;
  const schema = index.schema ?? context.target.schema;
  const state = await indexState(context.client, schema, index.name);
  if (state === 'invalid') {
    await dropInvalidIndex(context.client, schema, index.name);
    return false;
  }
  return state === 'valid';
}

async function runStatement({ migration, statement }: ScheduledStatement, context: RunContext, durations: Map<string, number>): Promise<void> {
  const started = performance.now();
  try {
    await execute(statement, context);
  } catch (cause) {
    if (isFlotillaError(cause)) throw cause;
    throw statementError(cause, migration, statement.line, statement.sql, context.target.tenant);
  }
  durations.set(migration.id, (durations.get(migration.id) ?? 0) + performance.now() - started);
}

/**
 * Runs one statement: a schema tenant's as its role, through the function it
 * cannot leave; those that cannot run inside a function (an index built
 * concurrently, VACUUM) under SET ROLE, which no expression they evaluate may
 * change; CREATE EXTENSION as Flotilla's own user (extensions are the database's).
 */
async function execute(statement: ScheduledStatement['statement'], context: RunContext): Promise<void> {
  const { client, target, runner } = context;
  if (target.role && statement.kind === 'CreateExtensionStmt') refuseForeignExtensionSchema(statement, target);
  if (!target.role || !runner || statement.kind === 'CreateExtensionStmt') {
    await client.query(statement.sql);
    return;
  }
  // A schema its migration creates (its own, by the rewrite) is made by Flotilla and given to the role.
  if (statement.kind === 'CreateSchemaStmt') {
    // Only the bare schema is made as Flotilla: elements (GRANT, CREATE …) or an owner would run with its rights.
    const body = unwrap(statement.node);
    if ((Array.isArray(body.schemaElts) && body.schemaElts.length > 0) || body.authrole !== undefined) {
      throw new FlotillaError('FLO_SCHEMA_ESCAPE', `Tenant ${target.tenant}: CREATE SCHEMA with elements or AUTHORIZATION is not run for a schema tenant.`, {
        hint: 'Create the schema alone (CREATE SCHEMA IF NOT EXISTS name), then its tables and grants in statements of their own.',
        meta: { tenant: target.tenant },
      });
    }
    await client.query(statement.sql);
    await ownTenantSchemas(client, target.role, tenantSchemas(target)!);
    return;
  }
  const direct = statement.nonTransactional !== undefined && statement.kind !== 'InsertStmt' && nonTransactionalReason(statement.kind, statement.node) !== undefined;
  if (direct) {
    await client.query(`SET ROLE ${quoteIdent(target.role)}`);
    try {
      await client.query(statement.sql);
    } finally {
      await client.query('RESET ROLE').catch(() => undefined);
    }
    return;
  }
  const sql = selectIntoAsCreateTable(statement.kind, statement.node) ?? statement.sql;
  if (await runner.run(sql)) return;
  // The function is gone or was changed: a new one (under a new name) runs the statement, or nothing does.
  TenantRunner.forget(client, target.role);
  context.runner = await TenantRunner.of(client, target.role);
  if (!(await context.runner.run(sql))) {
    throw new FlotillaError(
      'FLO_SCHEMA_ESCAPE',
      `Tenant ${target.tenant}: the function through which Flotilla runs the tenant's statements as its role could not be used; the upgrade was stopped.`,
      {
        hint: "Remove whatever in the migration changes Flotilla's functions in pg_temp.",
        meta: { tenant: target.tenant },
      },
    );
  }
}

/** CREATE EXTENSION runs as Flotilla's user: only into the tenant's own schemas (or, with none named, its search_path's). */
function refuseForeignExtensionSchema(statement: ScheduledStatement['statement'], target: MigrationTarget): void {
  const options = Array.isArray(unwrap(statement.node).options) ? (unwrap(statement.node).options as unknown[]) : [];
  const named = options
    .filter(isNode)
    .map((o) => (isNode(o.DefElem) ? o.DefElem : {}))
    .find((d) => d.defname === 'schema');
  const schema = named && isNode(named.arg) && isNode(named.arg.String) ? String(named.arg.String.sval) : undefined;
  if (schema === undefined || (tenantSchemas(target) ?? []).includes(schema)) return;
  throw new FlotillaError('FLO_SCHEMA_ESCAPE', `Tenant ${target.tenant}: CREATE EXTENSION … SCHEMA ${schema} names a schema the tenant does not own.`, {
    hint: "Leave the schema out (the extension goes into the tenant's own schema), or use the database tenancy kind.",
    meta: { tenant: target.tenant, schema },
  });
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

/** Runs the plan's verify files in the transaction: each query must return no rows or a single `true`. */
async function runVerifyFiles(context: RunContext): Promise<void> {
  for (const step of context.plan.steps) {
    const path = step.migration.verify?.path;
    for (const query of step.migration.verifyStatements) {
      // A schema tenant's verify queries are its own code: they run as its role, which counts the answer.
      if (context.runner) {
        const { runner } = context;
        const counted = await Promise.resolve()
          .then(async () => ({
            rows: await runner.count(`SELECT count(*) FROM (${query.sql}\n) v`),
            fine: await runner.count(
              `SELECT count(*) FROM (${query.sql}\n) v WHERE (SELECT count(*) FROM pg_catalog.jsonb_object_keys(pg_catalog.to_jsonb(v))) = 1 AND (SELECT e.value FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(v)) e) = 'true'::jsonb`,
            ),
          }))
          .catch((cause: Error) => {
            throw verifyError(context.target.tenant, `${path}:${query.line}`, cause.message, cause);
          });
        if (counted.rows !== 0 && !(counted.rows === 1 && counted.fine === 1))
          throw verifyError(context.target.tenant, `${path}:${query.line}`, `returned ${counted.rows} row${counted.rows === 1 ? '' : 's'}, not a single true`);
        continue;
      }
      let rows: Record<string, unknown>[];
      try {
        rows = (await context.client.query(query.sql)).rows;
      } catch (cause) {
        throw verifyError(context.target.tenant, `${path}:${query.line}`, (cause as Error).message, cause);
      }
      const values = rows.map((row) => Object.values(row));
      const holds = rows.length === 0 || (rows.length === 1 && values[0]!.length === 1 && values[0]![0] === true);
      if (!holds)
        throw verifyError(
          context.target.tenant,
          `${path}:${query.line}`,
          `returned ${JSON.stringify(values.slice(0, 3))}${rows.length > 3 ? ` and ${rows.length - 3} more rows` : ''}`,
        );
    }
  }
}

function verifyError(tenant: string, where: string, what: string, cause?: unknown): FlotillaError {
  return new FlotillaError('FLO_VERIFY_FAILED', `Tenant ${tenant}: verify query ${where} ${what}; the upgrade was rolled back.`, {
    hint: 'A verify query must return no rows or a single true. Fix the migration (or the data), or the verify file, and run migrate again.',
    meta: { tenant, where, result: what },
    ...(cause ? { cause } : {}),
  });
}

/**
 * Runs Flotilla's own queries with `search_path` set to pg_catalog alone, then
 * puts the session's back: a function the tenant made (in its schema, or in
 * pg_temp, which is never searched for functions unless named) cannot stand in
 * for a built-in one. Set for the session; a pooled session is reset on release.
 */
function catalogPathOnly(client: pg.ClientBase): <T>(work: () => Promise<T>) => Promise<T> {
  return async (work) => {
    // Read, then set, in one round trip (a row's items are computed in order).
    const { rows } = await client.query<{ path: string }>(
      `SELECT pg_catalog.current_setting('search_path') AS path, pg_catalog.set_config('search_path', 'pg_catalog', false) AS now`,
    );
    try {
      return await work();
    } finally {
      await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [rows[0]!.path]).catch(() => undefined);
    }
  };
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

/** The tenant's schemas, for verification (null: every schema of a database tenant's database). */
function tenantSchemas(target: MigrationTarget): readonly string[] | null {
  return target.schemaMap ? [...new Set([target.schema, ...target.schemaMap.values()])] : null;
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

function statementError(cause: unknown, migration: ParsedMigration, line: number, sql: string, tenant: string): FlotillaError {
  const pgError = cause as { message?: string; code?: string; position?: string; internalPosition?: string; internalQuery?: string; detail?: string };
  // No SQLSTATE: the session itself broke (server stopped, network), not the statement.
  if (!pgError.code || /^(08|57P0)/.test(pgError.code) || /^E[A-Z]+$/.test(pgError.code)) {
    return new FlotillaError('FLO_CONNECTION_FAILED', `Tenant ${tenant}: the connection was lost at ${migration.path}:${line}: ${pgError.message ?? String(cause)}`, {
      hint: 'PostgreSQL rolled the open transaction back, so the tenant is as it was before it. Check the server, then run migrate again: it resumes where the tenant is.',
      meta: { tenant, file: migration.path, line, migration: migration.id, sqlstate: pgError.code ?? null },
      cause,
    });
  }
  // Run through a schema tenant's function, the statement is the function's inner query.
  const position = Number(pgError.position ?? (pgError.internalQuery === sql ? pgError.internalPosition : undefined));
  const errorLine = Number.isFinite(position) && position > 0 ? line + (sql.slice(0, position - 1).match(/\n/g)?.length ?? 0) : line;
  const message = pgError.message ?? String(cause);
  return new FlotillaError('FLO_MIGRATION_FAILED', `Tenant ${tenant}: ${migration.path}:${errorLine}: ${message}${pgError.detail ? ` (${pgError.detail})` : ''}`, {
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
  });
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
