import { isFlotillaError } from '../errors.js';
import type { ParsedMigration } from '../migration.js';
import { unwrap } from '../sql/ast.js';
import { probeSchemaTenant, tenantSchemaMap } from '../sql/schema-rewrite.js';
import type { Family, LintCode, Severity } from './codes.js';
import { isLintCode, RULES } from './codes.js';
import type { RawFinding } from './rules.js';
import { checkStatement } from './rules.js';
import { SchemaModel, tableKey } from './schema-model.js';

export interface Finding {
  readonly code: LintCode;
  readonly severity: Severity;
  readonly family: Family;
  readonly file: string;
  readonly migration: string;
  readonly line: number;
  /** The statement, shortened to its first line. */
  readonly statement: string;
  readonly message: string;
  readonly instead: string;
  /** The reason given by `-- flotilla:allow`, when the finding is allowed. */
  readonly allowedBecause: string | null;
}

export interface LintOptions {
  /** Schema tenants exist (or may): report hard-coded schemas and schemas a tenant would not own. */
  readonly schemaTenants?: boolean;
  /** Tables hold tenant rows in shared tables: every new table needs this column and row-level security. */
  readonly tenantColumn?: string;
  /** Tables that hold no tenant rows (exempt from the tenant column and RLS rules). */
  readonly globalTables?: readonly string[];
  /** False when engine.lockTimeout is 0. */
  readonly engineSetsLockTimeout?: boolean;
}

export interface LintReport {
  readonly findings: readonly Finding[];
  /** Errors not allowed by a directive: `lint` fails, `migrate` refuses the migrations holding them. */
  readonly errors: number;
  readonly warnings: number;
  readonly files: number;
  readonly statements: number;
}

const TEMPLATE_SCHEMA = 'flotilla_lint_tenant';

/**
 * Lints a migrations directory on its parsed statements, replaying a model of
 * the schema so that "an existing table" means one an earlier file created.
 */
export function lintMigrations(migrations: readonly ParsedMigration[], options: LintOptions = {}): LintReport {
  const model = new SchemaModel();
  const findings: Finding[] = [];
  const createdSchemas = migrations.flatMap((m) => m.schemasCreated);
  const schemaMap = tenantSchemaMap(TEMPLATE_SCHEMA, createdSchemas);
  for (const migration of migrations) {
    let fileSetLockTimeout = false;
    const createdHere: string[] = [];
    const raw = new Map<number, RawFinding[]>();
    for (const statement of migration.statements) {
      const found = checkStatement({ migration, statement, model, engineSetsLockTimeout: options.engineSetsLockTimeout ?? true, fileSetLockTimeout });
      if (statement.nonTransactional && migration.statements.length > 1 && !migration.noTransaction) {
        found.push({
          code: 'FT401',
          message: `${statement.nonTransactional} cannot run in a transaction; Flotilla runs it after the others commit, so this file is not applied all at once.`,
        });
      }
      if (options.schemaTenants) found.push(...tenancyFindings(statement, migration, schemaMap));
      if (statement.kind === 'VariableSetStmt' && unwrap(statement.node).name === 'lock_timeout') fileSetLockTimeout = true;
      if (statement.kind === 'CreateStmt') createdHere.push(tableKey(unwrap(statement.node).relation) ?? '');
      raw.set(statement.index, found);
      if (statement.kind !== 'InsertStmt') model.apply(statement.kind, statement.node, migration.id);
    }
    if (options.tenantColumn) {
      for (const key of createdHere) {
        const table = model.tables.get(key);
        const statement = migration.statements.find((s) => s.kind === 'CreateStmt' && tableKey(unwrap(s.node).relation) === key);
        if (!table || !statement || options.globalTables?.includes(key.replace(/^public\./, ''))) continue;
        const list = raw.get(statement.index)!;
        if (!table.columns.has(options.tenantColumn))
          list.push({ code: 'FN603', message: `New table ${key} has no ${options.tenantColumn} column: its rows would belong to no tenant.` });
        if (!table.rls) list.push({ code: 'FN604', message: `New table ${key} has no row-level security: one tenant could read another's rows.` });
      }
    }
    for (const statement of migration.statements) findings.push(...resolveAllows(migration, statement, raw.get(statement.index) ?? []));
    for (const line of migration.removedTransactionControl)
      findings.push(
        finding('FT402', migration, line, 'BEGIN/COMMIT', 'Explicit transaction control in the file: Flotilla removed it and runs the upgrade in its own transaction.', null),
      );
    for (const allow of migration.strayAllows)
      findings.push(finding('FX904', migration, allow.line, `-- flotilla:allow ${allow.codes.join(',')}`, 'This allow stands next to no statement, so it allows nothing.', null));
  }
  return {
    findings,
    errors: findings.filter((f) => f.severity === 'error' && f.allowedBecause === null).length,
    warnings: findings.filter((f) => f.severity === 'warning' && f.allowedBecause === null).length,
    files: migrations.length,
    statements: migrations.reduce((n, m) => n + m.statements.length, 0),
  };
}

function tenancyFindings(statement: ParsedMigration['statements'][number], migration: ParsedMigration, schemaMap: Map<string, string>): RawFinding[] {
  if (statement.changesRole)
    return [{ code: 'FN605', message: "Changes the role it runs as (or has code that may): a schema tenant's migration runs under its own role and may not leave it." }];
  try {
    const rewritten = probeSchemaTenant(statement, { map: schemaMap, file: migration.path });
    return rewritten.rewritten
      ? [{ code: 'FN601', message: `Hard-coded schema (${rewritten.schemas.join(', ')}): schema tenants run this with it rewritten to their own schema.` }]
      : [];
  } catch (error) {
    if (isFlotillaError(error) && error.code === 'FLO_SCHEMA_ESCAPE')
      return [{ code: 'FN602', message: `Uses schema "${String(error.meta.schema)}", which a schema tenant does not own: it would be refused for every schema tenant.` }];
    throw error;
  }
}

/** Applies the statement's allow directives to its findings, and reports misused allows. */
function resolveAllows(migration: ParsedMigration, statement: ParsedMigration['statements'][number], raw: readonly RawFinding[]): Finding[] {
  const out: Finding[] = [];
  const used = new Set<string>();
  for (const f of raw) {
    const allow = statement.allows.find((a) => a.codes.includes(f.code) && a.reason !== '');
    if (allow) used.add(f.code);
    out.push(finding(f.code, migration, statement.line, statement.sql, f.message, allow?.reason ?? null));
  }
  for (const allow of statement.allows) {
    const text = `-- flotilla:allow ${allow.codes.join(',')}`;
    if (allow.reason === '') out.push(finding('FX901', migration, allow.line, text, 'An allow must say why the statement is safe: reason="…".', null));
    for (const code of allow.codes) {
      if (!isLintCode(code)) out.push(finding('FX902', migration, allow.line, text, `Unknown code ${code}.`, null));
      else if (!used.has(code) && RULES[code].family !== 'verification' && allow.reason !== '') {
        out.push(finding('FX903', migration, allow.line, text, `Nothing on the statement at line ${statement.line} is reported as ${code}.`, null));
      }
    }
  }
  return out;
}

function finding(code: LintCode, migration: ParsedMigration, line: number, sql: string, message: string, allowedBecause: string | null): Finding {
  const rule = RULES[code];
  const firstLine = sql.split('\n')[0]!;
  return {
    code,
    severity: rule.severity,
    family: rule.family,
    file: migration.path,
    migration: migration.id,
    line,
    statement: firstLine.length > 120 ? `${firstLine.slice(0, 117)}...` : firstLine,
    message,
    instead: rule.instead,
    allowedBecause,
  };
}
