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
  readonly opaque: boolean;
  readonly addsEnumValue: string | undefined;
  readonly strings: readonly string[];
  /** For an index build: the table it builds on. */
  readonly indexedTable: string | undefined;
  /** May run before an earlier, deferred index build on the same table without changing it. */
  readonly safeBeforeIndexBuild: boolean;
}

export interface ParsedMigration extends MigrationFile {
  readonly statements: readonly Statement[];
  readonly noTransaction: boolean;
  /** Schemas the migration creates (`CREATE SCHEMA`); schema tenants get their own copy of each. */
  readonly schemasCreated: readonly string[];
  /** Lines of explicit BEGIN/COMMIT removed because the engine owns the transaction. */
  readonly removedTransactionControl: readonly number[];
}

export function parseMigration(file: MigrationFile): ParsedMigration {
  const directives = parseDirectives(file.sql, file.path);
  const statements: Statement[] = [];
  const removed: number[] = [];
  const schemasCreated: string[] = [];
  for (const raw of splitStatements(file.sql, file.path)) {
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
      opaque: isOpaque(raw.kind),
      addsEnumValue: addedEnumValue(raw.kind, raw.node),
      strings: stringConstants(raw.node),
      indexedTable: indexedTable(raw.kind, raw.node),
      safeBeforeIndexBuild: safeBeforeIndexBuild(raw.kind, raw.node),
    });
  }
  return { ...file, statements, noTransaction: directives.noTransaction, schemasCreated, removedTransactionControl: removed };
}

