import type { AstNode } from './ast.js';
import { isNode, stringField, unwrap, walk } from './ast.js';

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

/**
 * Built-in functions that change nothing: common in back-fills, defaults and
 * checks. Any other call may run anything (a helper that deletes rows elsewhere,
 * `lo_unlink`, `dblink_exec`), so it makes a statement's effect unbounded.
 */
const SAFE_FUNCTIONS = new Set([
  'now',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'current_setting',
  'date_trunc',
  'date_part',
  'extract',
  'age',
  'make_date',
  'make_timestamp',
  'make_timestamptz',
  'make_interval',
  'to_timestamp',
  'to_date',
  'to_char',
  'to_number',
  'timezone',
  'coalesce',
  'nullif',
  'greatest',
  'least',
  'lower',
  'upper',
  'initcap',
  'trim',
  'btrim',
  'ltrim',
  'rtrim',
  'concat',
  'concat_ws',
  'length',
  'char_length',
  'octet_length',
  'substring',
  'substr',
  'left',
  'right',
  'replace',
  'translate',
  'split_part',
  'position',
  'strpos',
  'lpad',
  'rpad',
  'repeat',
  'reverse',
  'format',
  'quote_ident',
  'quote_literal',
  'starts_with',
  'regexp_replace',
  'regexp_match',
  'regexp_matches',
  'regexp_split_to_array',
  'string_to_array',
  'array_to_string',
  'string_agg',
  'md5',
  'sha256',
  'encode',
  'decode',
  'gen_random_uuid',
  'uuid_generate_v4',
  'uuid_generate_v1',
  'random',
  'round',
  'floor',
  'ceil',
  'ceiling',
  'abs',
  'trunc',
  'mod',
  'power',
  'sqrt',
  'sign',
  'array_agg',
  'array_append',
  'array_prepend',
  'array_cat',
  'array_remove',
  'array_replace',
  'array_length',
  'array_position',
  'cardinality',
  'unnest',
  'generate_series',
  'count',
  'max',
  'min',
  'sum',
  'avg',
  'bool_and',
  'bool_or',
  'every',
  'row_number',
  'rank',
  'dense_rank',
  'lag',
  'lead',
  'first_value',
  'last_value',
  'to_json',
  'to_jsonb',
  'json_build_object',
  'jsonb_build_object',
  'json_build_array',
  'jsonb_build_array',
  'json_agg',
  'jsonb_agg',
  'json_object_agg',
  'jsonb_object_agg',
  'jsonb_set',
  'jsonb_insert',
  'jsonb_strip_nulls',
  'jsonb_array_elements',
  'jsonb_array_elements_text',
  'json_array_elements',
  'jsonb_each',
  'jsonb_each_text',
  'jsonb_object_keys',
  'jsonb_typeof',
  'jsonb_array_length',
  'jsonb_extract_path',
  'jsonb_extract_path_text',
  'row_to_json',
  'nextval',
  'currval',
  'setval',
  'lastval',
  'pg_advisory_xact_lock',
  'pg_sleep',
  'hashtext',
  'hashtextextended',
  'to_tsvector',
  'to_tsquery',
  'plainto_tsquery',
  'setweight',
]);

/** Statement kinds that cannot change existing rows, columns or values (their own effects; later ones are separate). */
const KEEPS_DATA_KINDS = new Set([
  'CreateStmt',
  'IndexStmt',
  'CreateEnumStmt',
  'CompositeTypeStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'CreateRangeStmt',
  'CommentStmt',
  'SecLabelStmt',
  'GrantStmt',
  'GrantRoleStmt',
  'AlterDefaultPrivilegesStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'ViewStmt',
  'CreateSchemaStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'CreateStatsStmt',
  'AlterStatsStmt',
  'VariableSetStmt',
  'ReindexStmt',
  'VacuumStmt',
  'ClusterStmt',
  'RefreshMatViewStmt',
  'LockStmt',
  'NotifyStmt',
  'CheckPointStmt',
  'CreateExtensionStmt',
  'AlterOwnerStmt',
  'DefineStmt',
  'CreateCastStmt',
  'CreateOpClassStmt',
  'CreateConversionStmt',
  'CreatePublicationStmt',
  'AlterPublicationStmt',
  'CreateTableAsStmt',
  'SelectStmt',
  'ExplainStmt',
  'PrepareStmt',
  'DeallocateStmt',
  'DiscardStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'CreateTrigStmt',
  'RuleStmt',
  'CreateEventTrigStmt',
  'InsertStmt',
  'RenameStmt',
  'AlterObjectSchemaStmt',
  'AlterTableStmt',
  'DropStmt',
  'TruncateStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
  'AlterEnumStmt',
]);

/** Kinds that change what later statements do: a trigger or rule fires on them, a function may be called by them. */
const CHANGES_LATER = new Set([
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'CreateTrigStmt',
  'RuleStmt',
  'CreateEventTrigStmt',
  'CreateCastStmt',
  'CreateOpClassStmt',
  'DefineStmt',
]);

/** What DROP removes without CASCADE when nothing depends on it: only these can hold or define data that goes with them. */
const DROPS_THAT_REACH_FURTHER: Record<string, string> = {
  OBJECT_SCHEMA: 'DROP SCHEMA',
  OBJECT_TYPE: 'DROP TYPE',
  OBJECT_DOMAIN: 'DROP DOMAIN',
  OBJECT_EXTENSION: 'DROP EXTENSION',
  OBJECT_FUNCTION: 'DROP FUNCTION',
  OBJECT_PROCEDURE: 'DROP PROCEDURE',
  OBJECT_ROUTINE: 'DROP ROUTINE',
  OBJECT_AGGREGATE: 'DROP AGGREGATE',
};

/** ALTER TABLE sub-commands that add or constrain, never remove or convert, what a table holds. */
const KEEPS_DATA_ALTERS = new Set([
  'AT_AddColumn',
  'AT_ColumnDefault',
  'AT_SetNotNull',
  'AT_DropNotNull',
  'AT_AddConstraint',
  'AT_ValidateConstraint',
  'AT_DropConstraint',
  'AT_AddIndex',
  'AT_AddIndexConstraint',
  'AT_AddIdentity',
  'AT_SetIdentity',
  'AT_DropIdentity',
  'AT_EnableRowSecurity',
  'AT_DisableRowSecurity',
  'AT_ForceRowSecurity',
  'AT_NoForceRowSecurity',
  'AT_SetStatistics',
  'AT_SetStorage',
  'AT_SetCompression',
  'AT_SetRelOptions',
  'AT_ResetRelOptions',
  'AT_ReplicaIdentity',
  'AT_ChangeOwner',
  'AT_ClusterOn',
  'AT_DropCluster',
  'AT_SetLogged',
  'AT_SetUnLogged',
  'AT_EnableTrig',
  'AT_EnableAlwaysTrig',
  'AT_EnableReplicaTrig',
  'AT_DisableTrig',
  'AT_EnableTrigAll',
  'AT_DisableTrigAll',
  'AT_EnableTrigUser',
  'AT_DisableTrigUser',
  'AT_EnableRule',
  'AT_EnableAlwaysRule',
  'AT_EnableReplicaRule',
  'AT_DisableRule',
  'AT_AddInherit',
  'AT_DropInherit',
  'AT_AttachPartition',
  'AT_GenericOptions',
]);

/** ALTER TABLE sub-commands whose triggers and rules change what later statements do. */
const TRIGGER_ALTERS = /^AT_(Enable|Disable)(Always|Replica)?(Trig|Rule)/;

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
