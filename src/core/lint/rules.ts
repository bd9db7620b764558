import type { ParsedMigration, Statement } from '../migration.js';
import type { AstNode } from '../sql/ast.js';
import { isNode, stringField, unwrap, walk } from '../sql/ast.js';
import type { LintCode } from './codes.js';
import type { SchemaModel } from './schema-model.js';
import { alterCommands, droppedNames, tableKey } from './schema-model.js';

export interface RawFinding {
  readonly code: LintCode;
  readonly message: string;
}

export interface RuleContext {
  readonly migration: ParsedMigration;
  readonly statement: Statement;
  /** The schema before this statement. */
  readonly model: SchemaModel;
  /** False when engine.lockTimeout is 0: then each file should set its own. */
  readonly engineSetsLockTimeout: boolean;
  /** Whether the file set lock_timeout before this statement. */
  readonly fileSetLockTimeout: boolean;
}

const CHECKED_KINDS = new Set(['DropStmt', 'DropOwnedStmt', 'TruncateStmt', 'DeleteStmt', 'UpdateStmt', 'IndexStmt', 'AlterTableStmt', 'RenameStmt']);

/** Large-object functions that remove or overwrite what a large object holds. */
const LARGE_OBJECT_CHANGES = new Set(['lo_unlink', 'lo_truncate', 'lo_truncate64', 'lo_put', 'lowrite', 'lo_import']);

/** Functions whose DEFAULT makes ADD COLUMN rewrite every row (volatile). */
const VOLATILE_DEFAULTS = new Set(['random', 'gen_random_uuid', 'uuid_generate_v1', 'uuid_generate_v4', 'clock_timestamp', 'timeofday', 'nextval', 'txid_current']);

export function checkStatement(ctx: RuleContext): RawFinding[] {
  const { statement, model } = ctx;
  const findings: RawFinding[] = [];
  const add = (code: LintCode, message: string) => findings.push({ code, message });
  // From the statement's facts first: most statements (a data migration's INSERTs) need no more.
  if (statement.nonTransactional && !statement.keepsData) {
    add(
      'FT403',
      `${statement.kind.replace(/Stmt$/, '')} runs outside the transaction and may change data: a loss found after it cannot be rolled back, only restored from the backup taken first.`,
    );
  }
  if (statement.unbounded !== undefined) findings.push(...largeObjectChanges(statement.node));
  if ((statement.removes || statement.overwrites) && statement.kind !== 'DeleteStmt' && statement.kind !== 'UpdateStmt') findings.push(...nestedWithoutWhere(statement.node));
  // Only these kinds have rules of their own.
  if (!CHECKED_KINDS.has(statement.kind)) return findings;
  const body = unwrap(statement.node);
  /** Created by an earlier migration file (not this one): it may hold rows. */
  const existing = (relation: AstNode[keyof AstNode]) => {
    const table = model.table(relation);
    return table !== undefined && table.createdIn !== ctx.migration.id ? table : undefined;
  };
  const relName = (relation: AstNode[keyof AstNode]) => tableKey(relation)?.replace(/^public\./, '') ?? '?';

  switch (statement.kind) {
    case 'DropOwnedStmt':
      add('FD109', 'DROP OWNED drops every object the role owns, in every schema of the database, and the data in them.');
      break;
    case 'DropStmt': {
      const names = droppedNames(body);
      // A schema's drop already says it takes everything in it (FD101).
      if (body.behavior === 'DROP_CASCADE' && body.removeType !== 'OBJECT_SCHEMA')
        add('FD108', `DROP … CASCADE of ${names.join(', ')} also drops whatever depends on it: columns, tables, views and the data in them.`);
      if (body.removeType === 'OBJECT_DOMAIN') {
        for (const name of names) {
          const users = model.tablesUsingType(name.split('.').pop()!);
          if (users.length > 0) add('FD110', `DROP DOMAIN ${name}: columns of ${users.join(', ')} use it.`);
        }
      }
      if (body.removeType === 'OBJECT_EXTENSION') {
        for (const name of names) {
          const users = model.tablesUsingType(name);
          if (users.length > 0) add('FD110', `DROP EXTENSION ${name}: columns of ${users.join(', ')} use its type.`);
        }
      }
      if (body.removeType === 'OBJECT_FUNCTION' || body.removeType === 'OBJECT_PROCEDURE' || body.removeType === 'OBJECT_ROUTINE') {
        for (const name of functionNames(body)) {
          const users = model.triggersCalling(name);
          if (users.length > 0) add('FD110', `DROP FUNCTION ${name}: triggers ${users.join(', ')} run it.`);
        }
      }
      if (body.removeType === 'OBJECT_SCHEMA') for (const name of names) add('FD101', `DROP SCHEMA ${name} destroys every table in it and their rows.`);
      if (body.removeType === 'OBJECT_TABLE') for (const name of names) add('FD102', `DROP TABLE ${name} destroys the table and all its rows.`);
      if (body.removeType === 'OBJECT_TYPE') {
        for (const name of names) {
          const users = model.tablesUsingType(name.split('.').pop()!);
          if (users.length > 0) add('FD107', `DROP TYPE ${name}: columns of ${users.join(', ')} still use it.`);
        }
      }
      break;
    }
    case 'TruncateStmt':
      // A schema's drop already says it takes everything in it (FD101).
      if (body.behavior === 'DROP_CASCADE' && body.removeType !== 'OBJECT_SCHEMA') add('FD108', 'TRUNCATE … CASCADE also empties every table whose foreign keys point at these.');
      for (const relation of Array.isArray(body.relations) ? body.relations : []) {
        add('FD104', `TRUNCATE ${relName(isNode(relation) && isNode(relation.RangeVar) ? relation.RangeVar : relation)} removes every row.`);
      }
      break;
    case 'DeleteStmt':
      if (!body.whereClause) add('FD105', `DELETE FROM ${relName(body.relation)} without WHERE removes every row.`);
      break;
    case 'UpdateStmt':
      if (!body.whereClause) add('FD106', `UPDATE ${relName(body.relation)} without WHERE overwrites every row.`);
      break;
    case 'IndexStmt': {
      const table = existing(body.relation);
      if (table && body.unique) add('FM201', `Unique index on ${relName(body.relation)}, which already holds rows: it fails if any are duplicated.`);
      if (table && !body.concurrent) add('FL301', `CREATE INDEX on ${relName(body.relation)} blocks writes to it while the index builds.`);
      break;
    }
    case 'AlterTableStmt': {
      const table = existing(body.relation);
      const name = relName(body.relation);
      for (const cmd of alterCommands(body)) {
        const column = stringField(cmd, 'name');
        const def = cmd.def;
        switch (cmd.subtype) {
          case 'AT_DropColumn':
            add('FD103', `DROP COLUMN ${name}.${column} destroys the column's data in every row.`);
            if (cmd.behavior === 'DROP_CASCADE') add('FD108', `DROP COLUMN ${name}.${column} CASCADE also drops the views and constraints that use it.`);
            break;
          case 'AT_SetNotNull':
            if (table) add('FM202', `SET NOT NULL on ${name}.${column} fails if any existing row holds NULL, and scans the table under an exclusive lock.`);
            break;
          case 'AT_AlterColumnType':
            if (table) {
              add('FM204', `Changing the type of ${name}.${column} fails if an existing value does not convert.`);
              add('FL302', `Changing the type of ${name}.${column} rewrites the whole table under an exclusive lock.`);
            }
            break;
          case 'AT_AddColumn': {
            if (!table || !isNode(def) || !isNode(def.ColumnDef)) break;
            const constraints = (Array.isArray(def.ColumnDef.constraints) ? def.ColumnDef.constraints : []).filter(isNode).map((c) => (isNode(c.Constraint) ? c.Constraint : {}));
            const defaultConstraint = constraints.find((c) => c.contype === 'CONSTR_DEFAULT');
            const column = stringField(def.ColumnDef, 'colname');
            if (constraints.some((c) => c.contype === 'CONSTR_NOTNULL' || c.contype === 'CONSTR_PRIMARY') && !defaultConstraint) {
              add('FM203', `ADD COLUMN ${name}.${column} NOT NULL without a DEFAULT fails as soon as the table holds a row.`);
            }
            if (defaultConstraint && hasVolatileCall(defaultConstraint.raw_expr)) {
              add('FL302', `ADD COLUMN ${name}.${column} with a volatile DEFAULT rewrites every row under an exclusive lock.`);
            }
            if (isSerial(def.ColumnDef)) add('FL302', `ADD COLUMN ${name}.${column} of a serial type fills every row, rewriting the table under an exclusive lock.`);
            break;
          }
          case 'AT_AddConstraint': {
            if (!table || !isNode(def) || !isNode(def.Constraint)) break;
            const constraint = def.Constraint;
            if (constraint.contype === 'CONSTR_UNIQUE' || constraint.contype === 'CONSTR_PRIMARY') {
              if (typeof constraint.indexname !== 'string')
                add('FM201', `A unique constraint on ${name} fails if existing rows are duplicated, and locks the table while it builds.`);
            }
            if (constraint.contype === 'CONSTR_FOREIGN' && !constraint.skip_validation)
              add('FM205', `A foreign key on ${name} checks every existing row (and fails on an orphan) under a lock.`);
            if (constraint.contype === 'CONSTR_CHECK' && !constraint.skip_validation)
              add('FM206', `A check constraint on ${name} checks every existing row (and fails on one that violates it) under a lock.`);
            break;
          }
          default:
            break;
        }
      }
      if (table && !ctx.engineSetsLockTimeout && !ctx.fileSetLockTimeout) {
        add('FL303', `ALTER TABLE ${name} may wait behind long queries and block every other query meanwhile: no lock_timeout is set.`);
      }
      break;
    }
    case 'RenameStmt':
      if (body.renameType === 'OBJECT_TABLE')
        add('FB501', `Renaming ${relName(body.relation)} to ${stringField(body, 'newname')} breaks the running application, which still uses the old name.`);
      if (body.renameType === 'OBJECT_COLUMN')
        add(
          'FB502',
          `Renaming ${relName(body.relation)}.${stringField(body, 'subname')} to ${stringField(body, 'newname')} breaks the running application, which still uses the old name.`,
        );
      break;
    default:
      break;
  }
  return findings;
}

function calledName(call: AstNode): string {
  const names = Array.isArray(call.funcname) ? call.funcname : [];
  const last = names[names.length - 1];
  return isNode(last) && isNode(last.String) ? String(last.String.sval) : '';
}

function largeObjectChanges(node: AstNode): RawFinding[] {
  const found = new Set<string>();
  walk(node, (child) => {
    if (isNode(child.FuncCall) && LARGE_OBJECT_CHANGES.has(calledName(child.FuncCall))) found.add(calledName(child.FuncCall));
  });
  return [...found].map((name) => ({ code: 'FD111' as const, message: `${name}() removes or overwrites a large object, data that lives outside every table.` }));
}

/** DELETE or UPDATE without WHERE nested in another statement (a CTE of an INSERT, say). */
function nestedWithoutWhere(node: AstNode): RawFinding[] {
  const findings: RawFinding[] = [];
  walk(node, (child) => {
    const del = child.DeleteStmt;
    if (isNode(del) && !del.whereClause)
      findings.push({
        code: 'FD105',
        message: `DELETE FROM ${stringField(isNode(del.relation) ? del.relation : {}, 'relname') ?? '?'} without WHERE, inside this statement, removes every row.`,
      });
    const upd = child.UpdateStmt;
    if (isNode(upd) && !upd.whereClause)
      findings.push({
        code: 'FD106',
        message: `UPDATE ${stringField(isNode(upd.relation) ? upd.relation : {}, 'relname') ?? '?'} without WHERE, inside this statement, overwrites every row.`,
      });
  });
  return findings;
}

/** Names of the functions a DROP FUNCTION names (`f` of `f(int)`). */
function functionNames(body: AstNode): string[] {
  const objects = Array.isArray(body.objects) ? body.objects : [];
  return objects.flatMap((object) => {
    const owa = isNode(object) && isNode(object.ObjectWithArgs) ? object.ObjectWithArgs : undefined;
    const names = owa && Array.isArray(owa.objname) ? owa.objname : [];
    const last = names[names.length - 1];
    return isNode(last) && isNode(last.String) ? [String(last.String.sval)] : [];
  });
}

function hasVolatileCall(expr: AstNode[keyof AstNode]): boolean {
  let found = false;
  walk(expr, (node) => {
    const call = node.FuncCall;
    if (!isNode(call) || !Array.isArray(call.funcname)) return;
    const last = call.funcname[call.funcname.length - 1];
    if (isNode(last) && isNode(last.String) && VOLATILE_DEFAULTS.has(String(last.String.sval))) found = true;
  });
  return found;
}

function isSerial(def: AstNode): boolean {
  const typeName = def.typeName;
  if (!isNode(typeName) || !Array.isArray(typeName.names)) return false;
  const last = typeName.names[typeName.names.length - 1];
  return isNode(last) && isNode(last.String) && ['serial', 'bigserial', 'smallserial', 'serial4', 'serial8', 'serial2'].includes(String(last.String.sval));
}
