import type { AllowDirective } from './directives.js';
import { parseDirectives } from './directives.js';
import { FlotillaError } from './errors.js';
import type { MigrationFile } from './migration-file.js';
import { stringField, unwrap } from './sql/ast.js';
import type { RawStatement } from './sql/parser.js';
import { splitStatements } from './sql/parser.js';
import {
  addedEnumValue,
  indexedTable,
  isOpaque,
  keepsData,
  nonTransactionalReason,
  safeBeforeIndexBuild,
  stringConstants,
  touchedRelations,
  transactionControl,
} from './sql/statement.js';

/** A statement the engine will execute, with what the scheduler needs to know about it. */
export interface Statement extends RawStatement {
  /** Position among the migration's executable statements; history records these. */
  readonly index: number;
  /** Why it must run outside a transaction block, if it must. */
  readonly nonTransactional: string | undefined;
  readonly touches: readonly string[];
  /** Cannot lose existing rows, tables or column values (verification skips what it touches). */
  readonly keepsData: boolean;
  readonly opaque: boolean;
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
  const raws = splitStatements(file.sql, file.path);
  const allowsOf = attachAllows(directives.allows, raws, file.sql);
  for (const raw of raws) {
    const control = transactionControl(raw.kind, raw.node);
    if (control === 'forbidden') {
      throw new FlotillaError(
        'FLO_TRANSACTION_CONTROL',
        `${file.path}:${raw.line}: "${raw.sql}" is not allowed in a migration.`,
        {
          hint: 'Remove it. Flotilla runs each tenant upgrade in its own transaction and rolls back on any error; BEGIN/COMMIT are dropped, ROLLBACK and SAVEPOINT are refused.',
          meta: { file: file.path, line: raw.line, statement: raw.sql },
        },
      );
    }
    if (control) {
      removed.push(raw.line);
      continue;
    }
    if (raw.kind === 'CreateSchemaStmt') {
      const name = stringField(unwrap(raw.node), 'schemaname');
      if (name) schemasCreated.push(name);
    }
    statements.push({
      ...raw,
      index: statements.length,
      nonTransactional: directives.noTransaction ? 'flotilla:no-transaction' : nonTransactionalReason(raw.kind, raw.node),
      touches: touchedRelations(raw.kind, raw.node),
      keepsData: keepsData(raw.kind, raw.node),
      opaque: isOpaque(raw.kind),
      addsEnumValue: addedEnumValue(raw.kind, raw.node),
      strings: stringConstants(raw.node),
      indexedTable: indexedTable(raw.kind, raw.node),
      safeBeforeIndexBuild: safeBeforeIndexBuild(raw.kind, raw.node),
      allows: allowsOf.get(raw) ?? [],
    });
  }
  const attached = new Set([...allowsOf.values()].flat());
  const strayAllows = directives.allows.filter((allow) => !attached.has(allow));
  const verifyStatements = file.verify ? splitStatements(file.verify.sql, file.verify.path) : [];
  return { ...file, statements, noTransaction: directives.noTransaction, schemasCreated, removedTransactionControl: removed, strayAllows, verifyStatements };
}

/**
 * An allow belongs to the statement it stands next to: in the comment lines
 * directly above it (no other statement in between), or on its last line.
 */
function attachAllows(allows: readonly AllowDirective[], raws: readonly RawStatement[], sql: string): Map<RawStatement, AllowDirective[]> {
  const result = new Map<RawStatement, AllowDirective[]>();
  if (allows.length === 0) return result;
  const lines = sql.split('\n');
  const spans = raws.map((raw) => ({ raw, first: raw.line, last: raw.line + (raw.sql.match(/\n/g)?.length ?? 0) }));
  for (const allow of allows) {
    const trailing = spans.find((s) => s.last === allow.line && s.first <= allow.line);
    let owner = trailing?.raw;
    if (!owner) {
      const next = spans.find((s) => s.first > allow.line);
      // Only comment or blank lines may stand between the directive and the statement.
      const between = next ? lines.slice(allow.line, next.first - 1) : [];
      if (next && between.every((text) => /^\s*(--.*)?$/.test(text))) owner = next.raw;
    }
    if (owner) result.set(owner, [...(result.get(owner) ?? []), allow]);
  }
  return result;
}

