import type { AstNode } from './ast.js';
import { isNode, nameList, stringField, unwrap, walk } from './ast.js';
import { deparseStatement } from './parser.js';

/** Why a statement cannot run inside a transaction block, or undefined if it can. */
export function nonTransactionalReason(kind: string, node: AstNode): string | undefined {
  const body = unwrap(node);
  switch (kind) {
    case 'IndexStmt':
      return body.concurrent ? 'CREATE INDEX CONCURRENTLY' : undefined;
    case 'DropStmt':
      return body.concurrent ? 'DROP INDEX CONCURRENTLY' : undefined;
    case 'ReindexStmt': {
      const params = Array.isArray(body.params) ? body.params : [];
      const concurrently = params.some((p) => isNode(p) && isNode(p.DefElem) && p.DefElem.defname === 'concurrently');
      if (concurrently) return 'REINDEX CONCURRENTLY';
      const target = stringField(body, 'kind');
      return target === 'REINDEX_OBJECT_SYSTEM' || target === 'REINDEX_OBJECT_DATABASE' ? 'REINDEX SYSTEM/DATABASE' : undefined;
    }
    case 'VacuumStmt':
      return body.is_vacuumcmd ? 'VACUUM' : undefined;
    case 'AlterSystemStmt':
      return 'ALTER SYSTEM';
    case 'CreatedbStmt':
      return 'CREATE DATABASE';
    case 'DropdbStmt':
      return 'DROP DATABASE';
    case 'CreateTableSpaceStmt':
      return 'CREATE TABLESPACE';
    case 'DropTableSpaceStmt':
      return 'DROP TABLESPACE';
    case 'CreateSubscriptionStmt':
      return 'CREATE SUBSCRIPTION';
    case 'DropSubscriptionStmt':
      return 'DROP SUBSCRIPTION';
    default:
      return undefined;
  }
}

export type TransactionControl = 'open' | 'close' | 'forbidden';

/** BEGIN/START and COMMIT/END are dropped (the engine owns the transaction); the rest are refused. */
export function transactionControl(kind: string, node: AstNode): TransactionControl | undefined {
  if (kind !== 'TransactionStmt') return undefined;
  const stmtKind = stringField(unwrap(node), 'kind');
  if (stmtKind === 'TRANS_STMT_BEGIN' || stmtKind === 'TRANS_STMT_START') return 'open';
  if (stmtKind === 'TRANS_STMT_COMMIT') return 'close';
  return 'forbidden';
}

/**
 * Names of relations (tables, indexes, sequences, views) a statement reads or
 * changes. Used to decide whether a deferred non-transactional statement may run
 * after later transactional ones, so this errs on the side of naming more.
 */
export function touchedRelations(kind: string, node: AstNode): string[] {
  const names = new Set<string>();
  walk(node, (child) => {
    // RangeVar, wrapped or not: fields typed as RangeVar are emitted bare.
    const relname = stringField(child, 'relname');
    if (relname) names.add(relname);
  });
  const body = unwrap(node);
  const idxname = kind === 'IndexStmt' ? stringField(body, 'idxname') : undefined;
  if (idxname) names.add(idxname);
  if (kind === 'DropStmt' && Array.isArray(body.objects)) {
    for (const object of body.objects) {
      const list = isNode(object) && isNode(object.List) ? nameList(object.List.items) : undefined;
      const last = list?.[list.length - 1];
      if (last) names.add(last);
    }
  }
  if (kind === 'RenameStmt') {
    const newname = stringField(body, 'newname');
    if (newname) names.add(newname);
    const list = isNode(body.object) && isNode(body.object.List) ? nameList(body.object.List.items) : undefined;
    const last = list?.[list.length - 1];
    if (last) names.add(last);
  }
  return [...names];
}

/** Statements whose effects cannot be read from the tree (procedural code, calls): never moved past an index build. */
export function isOpaque(kind: string, unbounded: string | undefined): boolean {
  return unbounded !== undefined || kind === 'DoStmt' || kind === 'CallStmt' || kind === 'SelectStmt';
}

/** `ALTER TYPE t ADD VALUE 'x'` → `x`. PostgreSQL refuses to use such a value before the adding transaction commits. */
export function addedEnumValue(kind: string, node: AstNode): string | undefined {
  if (kind !== 'AlterEnumStmt') return undefined;
  const body = unwrap(node);
  return body.oldVal ? undefined : stringField(body, 'newVal');
}

/** Every string constant in the tree, and procedural bodies (`DO $$...$$`, function bodies). */
export function stringConstants(node: AstNode): string[] {
  const found: string[] = [];
  walk(node, (child) => {
    const aConst = child.A_Const;
    if (isNode(aConst) && isNode(aConst.sval) && typeof aConst.sval.sval === 'string') found.push(aConst.sval.sval);
    const defElem = child.DefElem;
    if (isNode(defElem) && defElem.defname === 'as') {
      walk(defElem.arg, (inner) => {
        if (isNode(inner.String) && typeof inner.String.sval === 'string') found.push(inner.String.sval);
      });
    }
  });
  return found;
}

/** ALTER TABLE sub-commands that cannot invalidate an index being built on the table by another statement. */
const INDEX_SAFE_ALTERS = new Set(['AT_AddColumn', 'AT_ColumnDefault', 'AT_SetNotNull', 'AT_DropNotNull', 'AT_AddConstraint', 'AT_ValidateConstraint']);

/** Statement kinds that only change rows, which an index built afterwards simply includes. */
const ROW_CHANGES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'IndexStmt', 'CommentStmt']);

/**
 * True when a statement may run before an index build on the same table that was
 * written earlier (a deferred `CREATE INDEX CONCURRENTLY`) without changing its
 * result: it adds columns, defaults or constraints, or only changes rows.
 */
export function safeBeforeIndexBuild(kind: string, node: AstNode): boolean {
  if (ROW_CHANGES.has(kind)) return true;
  if (kind !== 'AlterTableStmt') return false;
  const cmds = unwrap(node).cmds;
  if (!Array.isArray(cmds)) return false;
  return cmds.every((cmd) => {
    if (!isNode(cmd) || !isNode(cmd.AlterTableCmd)) return false;
    const sub = cmd.AlterTableCmd;
    if (!INDEX_SAFE_ALTERS.has(String(sub.subtype))) return false;
    // ADD CONSTRAINT ... USING INDEX names an index, which may be the one being built.
    const def = sub.def;
    return !(isNode(def) && isNode(def.Constraint) && typeof def.Constraint.indexname === 'string');
  });
}

/** The table an index statement builds on, if it is one. */
export function indexedTable(kind: string, node: AstNode): string | undefined {
  if (kind !== 'IndexStmt') return undefined;
  const relation = unwrap(node).relation;
  return isNode(relation) ? stringField(relation, 'relname') : undefined;
}

/**
 * `SELECT … INTO t` written as `CREATE TABLE t AS SELECT …` (the same table,
 * the same rows): PL/pgSQL's EXECUTE cannot run the first form. Undefined for
 * any other statement.
 */
export function selectIntoAsCreateTable(kind: string, node: AstNode): string | undefined {
  if (kind !== 'SelectStmt') return undefined;
  const { intoClause, ...query } = unwrap(node);
  if (!isNode(intoClause)) return undefined;
  return deparseStatement({ CreateTableAsStmt: { query: { SelectStmt: query }, into: intoClause, objtype: 'OBJECT_TABLE' } });
}
