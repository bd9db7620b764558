import { FlotillaError, isConnectionError, isFlotillaError } from '../core/errors.js';
import type { ParsedMigration } from '../core/migration.js';
import type { ScheduledStatement } from '../core/schedule.js';
import { isNode, stringField, unwrap } from '../core/sql/ast.js';
import { nonTransactionalReason, selectIntoAsCreateTable } from '../core/sql/statement.js';
import type { MigrationTarget } from '../core/target.js';
import { dropInvalidIndex, indexState } from '../postgres/index-state.js';
import { runSql, runSqlAs } from '../postgres/target-session.js';
import { ownTenantSchemas, TenantRunner } from '../postgres/tenant-role.js';
import type { RunContext } from './run-context.js';
import { tenantSchemas } from './run-context.js';

/** A named CREATE INDEX CONCURRENTLY (its name, and its schema when written): whether it ran can be read from the catalog. */
export function namedIndexBuild({ statement }: ScheduledStatement): { name: string; schema: string | undefined } | undefined {
  const body = statement.node.IndexStmt;
  if (!isNode(body) || body.concurrent !== true || typeof body.idxname !== 'string') return undefined;
  return { name: body.idxname, schema: isNode(body.relation) ? stringField(body.relation, 'schemaname') : undefined };
}

/**
 * Before a non-transactional index build: drop what a failed earlier attempt
 * left INVALID, and when resuming, treat a valid index of that name as done (the
 * build succeeded but the crash came before its history row was written).
 */
export async function indexAlreadyBuilt(scheduled: ScheduledStatement, context: RunContext): Promise<boolean> {
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

export async function runStatement({ migration, statement }: ScheduledStatement, context: RunContext, durations: Map<string, number>): Promise<void> {
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
    await runSql(client, statement.sql);
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
    await runSql(client, statement.sql);
    await ownTenantSchemas(client, target.role, tenantSchemas(target)!);
    return;
  }
  const direct = statement.nonTransactional !== undefined && statement.kind !== 'InsertStmt' && nonTransactionalReason(statement.kind, statement.node) !== undefined;
  if (direct) {
    await runSqlAs(client, target.role, statement.sql);
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

function statementError(cause: unknown, migration: ParsedMigration, line: number, sql: string, tenant: string): FlotillaError {
  const pgError = cause as { message?: string; code?: string; position?: string; internalPosition?: string; internalQuery?: string; detail?: string };
  // No SQLSTATE: the session itself broke (server stopped, network), not the statement.
  if (!pgError.code || isConnectionError(cause)) {
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
