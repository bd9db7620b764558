import type { AstNode } from './ast.js';
import { isNode, stringField, unwrap, walk } from './ast.js';
import { SAFE_FUNCTIONS, KEEPS_DATA_KINDS, CHANGES_LATER, DROPS_THAT_REACH_FURTHER, KEEPS_DATA_ALTERS, TRIGGER_ALTERS } from './effect-lists.js';

/** What a statement can do to the data a tenant already holds, read from its whole tree. */
export interface StatementEffects {
  /** Tables whose rows, columns or values it may change itself, nested statements included (names without schema). */
  readonly writes: readonly string[];
  /** May remove rows, columns or tables (a DELETE anywhere in it, TRUNCATE, DROP TABLE, DROP COLUMN, MERGE). */
  readonly removes: boolean;
  /** May overwrite values of existing rows (an UPDATE anywhere in it, an upsert, MERGE, a type change). */
  readonly overwrites: boolean;
  /** Why what it changes cannot be read from it (procedural code, a function call, CASCADE…), or undefined. */
  readonly unbounded: string | undefined;
  /** Changes what later statements do (a trigger, a rule, a function they may call). */
  readonly changesLaterEffects: boolean;
}

/** Role changes written in procedural code or strings it may execute. */
const ROLE_CHANGE_TEXT =
  /\b(?:set|reset)\s+(?:local\s+|session\s+)?(?:role|session\s+authorization)\b|\breset\s+all\b|\bdiscard\b|set_config\s*\(\s*'(?:role|session_authorization)'/i;

/** Whether a statement can change the role the session acts as: a schema tenant's migrations may not. */
export function changesRole(kind: string, node: AstNode, strings: readonly string[]): boolean {
  const body = unwrap(node);
  if (kind === 'VariableSetStmt' && (body.kind === 'VAR_RESET_ALL' || body.name === 'role' || body.name === 'session_authorization')) return true;
  if (kind === 'DiscardStmt') return true;
  return strings.some((text) => ROLE_CHANGE_TEXT.test(text));
}

/** No row, column or value the tenant holds can be lost or changed by the statement itself. */
export function keepsData(effects: StatementEffects): boolean {
  return !effects.removes && !effects.overwrites && effects.unbounded === undefined;
}

export function statementEffects(kind: string, node: AstNode): StatementEffects {
  const writes = new Set<string>();
  let removes = false;
  let overwrites = false;
  let unbounded: string | undefined;
  let changesLater = CHANGES_LATER.has(kind);
  const body = unwrap(node);
  const target = (relation: unknown) => {
    const name = isNode(relation) ? stringField(relation, 'relname') : undefined;
    if (name) writes.add(name);
  };
  const reachFurther = (reason: string) => {
    unbounded ??= reason;
  };

  if (kind === 'DoStmt') reachFurther('DO block');
  if (kind === 'CallStmt') reachFurther('CALL');
  if (kind === 'ExecuteStmt') reachFurther('EXECUTE of a prepared statement');
  if (kind === 'DropOwnedStmt') reachFurther('DROP OWNED');
  if (kind === 'CopyStmt' && (body.filename !== undefined || body.is_program === true)) reachFurther('COPY with a file or program');
  if (!KEEPS_DATA_KINDS.has(kind)) reachFurther(`${kind.replace(/Stmt$/, '')}, a statement Flotilla cannot read the effect of`);

  // Data-modifying statements anywhere in the tree: CTEs, subqueries, EXPLAIN ANALYZE.
  walk(node, (child) => {
    if (isNode(child.InsertStmt)) {
      target(child.InsertStmt.relation);
      const conflict = child.InsertStmt.onConflictClause;
      if (isNode(conflict) && conflict.action === 'ONCONFLICT_UPDATE') overwrites = true;
    }
    if (isNode(child.UpdateStmt)) {
      target(child.UpdateStmt.relation);
      overwrites = true;
    }
    if (isNode(child.DeleteStmt)) {
      target(child.DeleteStmt.relation);
      removes = true;
    }
    if (isNode(child.MergeStmt)) {
      target(child.MergeStmt.relation);
      removes = true;
      overwrites = true;
    }
    const call = child.FuncCall;
    if (isNode(call) && Array.isArray(call.funcname)) {
      const last = call.funcname[call.funcname.length - 1];
      const name = isNode(last) && isNode(last.String) ? String(last.String.sval) : '';
      if (!SAFE_FUNCTIONS.has(name) && evaluatesCalls(kind)) reachFurther(`a call of ${name}()`);
      // A view that calls such a function runs it whenever a later statement reads the view.
      if (!SAFE_FUNCTIONS.has(name) && kind === 'ViewStmt') changesLater = true;
    }
  });

  switch (kind) {
    case 'DropStmt': {
      if (body.behavior === 'DROP_CASCADE') reachFurther('CASCADE');
      const further = DROPS_THAT_REACH_FURTHER[String(body.removeType)];
      if (further) reachFurther(further);
      if (body.removeType === 'OBJECT_TABLE' || body.removeType === 'OBJECT_FOREIGN_TABLE') {
        removes = true;
        for (const object of Array.isArray(body.objects) ? body.objects : []) {
          const names = isNode(object) && isNode(object.List) && Array.isArray(object.List.items) ? object.List.items : [];
          const last = names[names.length - 1];
          if (isNode(last) && isNode(last.String) && typeof last.String.sval === 'string') writes.add(last.String.sval);
        }
      }
      if (body.removeType === 'OBJECT_TRIGGER' || body.removeType === 'OBJECT_RULE') changesLater = true;
      break;
    }
    case 'TruncateStmt':
      removes = true;
      if (body.behavior === 'DROP_CASCADE') reachFurther('TRUNCATE … CASCADE');
      for (const relation of Array.isArray(body.relations) ? body.relations : []) target(isNode(relation) && isNode(relation.RangeVar) ? relation.RangeVar : relation);
      break;
    case 'AlterTableStmt': {
      const cmds = (Array.isArray(body.cmds) ? body.cmds : []).filter(isNode).map((c) => (isNode(c.AlterTableCmd) ? c.AlterTableCmd : {}));
      for (const cmd of cmds) {
        const subtype = String(cmd.subtype);
        if (cmd.behavior === 'DROP_CASCADE') reachFurther('CASCADE');
        if (TRIGGER_ALTERS.test(subtype)) changesLater = true;
        if (KEEPS_DATA_ALTERS.has(subtype)) continue;
        target(body.relation);
        if (subtype === 'AT_DropColumn') removes = true;
        else overwrites = true;
      }
      break;
    }
    case 'RenameStmt':
      // The table's data stays, under its new name (verification follows renames).
      target(body.relation);
      break;
    case 'AlterObjectSchemaStmt':
      // Moved to another schema, a table is no longer where the tenant's data is.
      target(body.relation);
      if (body.relation !== undefined) removes = true;
      break;
    case 'AlterEnumStmt':
      // Renaming a value changes it in every row that holds it, in every table using the type.
      if (body.oldVal !== undefined) reachFurther('ALTER TYPE … RENAME VALUE');
      break;
    default:
      break;
  }
  return { writes: [...writes], removes, overwrites, unbounded, changesLaterEffects: changesLater };
}

/** Kinds whose expressions are evaluated against data when they run (not stored as a definition for later). */
function evaluatesCalls(kind: string): boolean {
  return (
    kind === 'InsertStmt' ||
    kind === 'UpdateStmt' ||
    kind === 'DeleteStmt' ||
    kind === 'MergeStmt' ||
    kind === 'SelectStmt' ||
    kind === 'CreateTableAsStmt' ||
    kind === 'ExplainStmt' ||
    kind === 'AlterTableStmt' ||
    kind === 'CopyStmt'
  );
}
