import type { AllowDirective } from './directives.js';
import { parseDirectives } from './directives.js';
import { FlotillaError } from './errors.js';
import type { MigrationFile } from './migration-file.js';
import type { AstNode } from './sql/ast.js';
import { stringField, unwrap } from './sql/ast.js';
import { changesRole, keepsData, statementEffects } from './sql/effects.js';
import type { RawStatement } from './sql/parser.js';
import { eachStatement, parseOne, splitStatements } from './sql/parser.js';
import { addedEnumValue, indexedTable, isOpaque, nonTransactionalReason, safeBeforeIndexBuild, stringConstants, touchedRelations, transactionControl } from './sql/statement.js';

/** A statement the engine will execute, with what the scheduler needs to know about it. */
export interface Statement extends RawStatement {
  /** Position among the migration's executable statements; history records these. */
  readonly index: number;
  /** Why it must run outside a transaction block, if it must. */
  readonly nonTransactional: string | undefined;
  readonly touches: readonly string[];
  /** Cannot lose existing rows, tables or column values (verification skips what it touches). */
  readonly keepsData: boolean;
  /** Its effect cannot be read (procedural code, a call, CASCADE…): never reordered, and everything is verified. */
  readonly opaque: boolean;
  /** Tables it may change itself, nested statements included. */
  readonly writes: readonly string[];
  readonly removes: boolean;
  /** May overwrite values of existing rows. */
  readonly overwrites: boolean;
  /** Why its effect cannot be bounded, if it cannot. */
  readonly unbounded: string | undefined;
  /** Creates or changes a trigger, rule or function: later statements may do more than they say. */
  readonly changesLaterEffects: boolean;
  /** Changes (or has code that may change) the role it runs as. */
  readonly changesRole: boolean;
  readonly addsEnumValue: string | undefined;
  readonly strings: readonly string[];
  /** For an index build: the table it builds on. */
  readonly indexedTable: string | undefined;
  /** May run before an earlier, deferred index build on the same table without changing it. */
  readonly safeBeforeIndexBuild: boolean;
  /** Allow directives next to the statement (the comment lines just above it, or on its last line). */
  readonly allows: readonly AllowDirective[];
}

export interface ParsedMigration extends MigrationFile {
  readonly statements: readonly Statement[];
  readonly noTransaction: boolean;
  /** Schemas the migration creates (`CREATE SCHEMA`); schema tenants get their own copy of each. */
  readonly schemasCreated: readonly string[];
  /** Lines of explicit BEGIN/COMMIT removed because the engine owns the transaction. */
  readonly removedTransactionControl: readonly number[];
  /** Allow directives that stand next to no statement (lint reports them). */
  readonly strayAllows: readonly AllowDirective[];
  /** The verify file's queries: each must return no rows or a single `true` before commit. */
  readonly verifyStatements: readonly RawStatement[];
}

export function parseMigration(file: MigrationFile): ParsedMigration {
  const directives = parseDirectives(file.sql, file.path);
  const statements: Statement[] = [];
  const removed: number[] = [];
  const schemasCreated: string[] = [];
  // Where each statement stands, for the allow directives next to it (transaction control included).
  const spans: { first: number; last: number; allows?: AllowDirective[] }[] = [];
  for (const raw of eachStatement(file.sql, file.path)) {
    const span: { first: number; last: number; allows?: AllowDirective[] } = { first: raw.line, last: raw.line + countNewlines(raw.sql) };
    spans.push(span);
    const control = transactionControl(raw.kind, raw.node);
    if (control === 'forbidden') {
      throw new FlotillaError('FLO_TRANSACTION_CONTROL', `${file.path}:${raw.line}: "${raw.sql}" is not allowed in a migration.`, {
        hint: 'Remove it. Flotilla runs each tenant upgrade in its own transaction and rolls back on any error; BEGIN/COMMIT are dropped, ROLLBACK and SAVEPOINT are refused.',
        meta: { file: file.path, line: raw.line, statement: raw.sql },
      });
    }
    if (control) {
      removed.push(raw.line);
      continue;
    }
    if (raw.kind === 'CreateSchemaStmt') {
      const name = stringField(unwrap(raw.node), 'schemaname');
      if (name) schemasCreated.push(name);
    }
    const allows: AllowDirective[] = [];
    span.allows = allows;
    // Built field by field, not by spreading `raw`: spreading into a literal this wide is slow, and a data
    // migration makes hundreds of thousands of these.
    const effects = statementEffects(raw.kind, raw.node);
    const strings = stringConstants(raw.node);
    const facts = {
      index: statements.length,
      nonTransactional: directives.noTransaction ? 'flotilla:no-transaction' : nonTransactionalReason(raw.kind, raw.node),
      touches: touchedRelations(raw.kind, raw.node),
      keepsData: keepsData(effects),
      opaque: isOpaque(raw.kind, effects.unbounded),
      writes: effects.writes,
      removes: effects.removes,
      overwrites: effects.overwrites,
      unbounded: effects.unbounded,
      changesLaterEffects: effects.changesLaterEffects,
      addsEnumValue: addedEnumValue(raw.kind, raw.node),
      strings,
      changesRole: changesRole(raw.kind, raw.node, strings),
      indexedTable: indexedTable(raw.kind, raw.node),
      safeBeforeIndexBuild: safeBeforeIndexBuild(raw.kind, raw.node),
      allows,
    };
    statements.push(raw.kind === 'InsertStmt' ? new DataStatement(raw, facts) : { node: raw.node, kind: raw.kind, sql: raw.sql, line: raw.line, column: raw.column, ...facts });
  }
  const stray = attachAllows(directives.allows, spans, file.sql);
  const verifyStatements = file.verify ? splitStatements(file.verify.sql, file.verify.path) : [];
  return { ...file, statements, noTransaction: directives.noTransaction, schemasCreated, removedTransactionControl: removed, strayAllows: stray, verifyStatements };
}

type StatementFacts = Omit<Statement, keyof RawStatement>;

/**
 * A data migration holds many thousands of INSERTs, whose trees would take
 * gigabytes; everything the engine and lint need of them is read above. Their
 * tree is let go, and parsed again from the statement's own text if anything
 * asks for it (a schema tenant's rewrite, say). The tree is a getter: copy such
 * a statement with `{ ...statement, node: statement.node }`, not a bare spread.
 */
class DataStatement implements Statement {
  readonly kind: string;
  readonly sql: string;
  readonly line: number;
  readonly column: number;
  readonly index: number;
  readonly nonTransactional: string | undefined;
  readonly touches: readonly string[];
  readonly keepsData: boolean;
  /** Its effect cannot be read (procedural code, a call, CASCADE…): never reordered, and everything is verified. */
  readonly opaque: boolean;
  /** Tables it may change itself, nested statements included. */
  readonly writes: readonly string[];
  readonly removes: boolean;
  /** May overwrite values of existing rows. */
  readonly overwrites: boolean;
  /** Why its effect cannot be bounded, if it cannot. */
  readonly unbounded: string | undefined;
  /** Creates or changes a trigger, rule or function: later statements may do more than they say. */
  readonly changesLaterEffects: boolean;
  readonly changesRole: boolean;
  readonly addsEnumValue: string | undefined;
  readonly strings: readonly string[];
  readonly indexedTable: string | undefined;
  readonly safeBeforeIndexBuild: boolean;
  readonly allows: readonly AllowDirective[];
  private tree: AstNode | undefined;

  constructor(raw: RawStatement, facts: StatementFacts) {
    this.kind = raw.kind;
    this.sql = raw.sql;
    this.line = raw.line;
    this.column = raw.column;
    this.index = facts.index;
    this.nonTransactional = facts.nonTransactional;
    this.touches = facts.touches;
    this.keepsData = facts.keepsData;
    this.opaque = facts.opaque;
    this.addsEnumValue = facts.addsEnumValue;
    this.strings = facts.strings;
    this.writes = facts.writes;
    this.removes = facts.removes;
    this.overwrites = facts.overwrites;
    this.unbounded = facts.unbounded;
    this.changesLaterEffects = facts.changesLaterEffects;
    this.changesRole = facts.changesRole;
    this.indexedTable = facts.indexedTable;
    this.safeBeforeIndexBuild = facts.safeBeforeIndexBuild;
    this.allows = facts.allows;
  }

  get node(): AstNode {
    this.tree ??= parseOne(this.sql);
    return this.tree;
  }
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * An allow belongs to the statement it stands next to: in the comment lines
 * directly above it (no other statement in between), or on its last line.
 * Returns the allows that stand next to no statement.
 */
function attachAllows(allows: readonly AllowDirective[], spans: readonly { first: number; last: number; allows?: AllowDirective[] }[], sql: string): AllowDirective[] {
  if (allows.length === 0) return [];
  const lines = sql.split('\n');
  const stray: AllowDirective[] = [];
  for (const allow of allows) {
    let owner = spans.find((s) => s.last === allow.line && s.first <= allow.line);
    if (!owner) {
      const next = spans.find((s) => s.first > allow.line);
      // Only comment or blank lines may stand between the directive and the statement.
      const between = next ? lines.slice(allow.line, next.first - 1) : [];
      if (next && between.every((text) => /^\s*(--.*)?$/.test(text))) owner = next;
    }
    if (owner?.allows) owner.allows.push(allow);
    else stray.push(allow);
  }
  return stray;
}
