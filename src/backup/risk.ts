import type { ParsedMigration, Statement } from '../core/migration.js';
import { unwrap } from '../core/sql/ast.js';
import type { LintReport } from '../lint/lint.js';
import { changesData } from '../lint/codes.js';

/**
 * Statements that may run outside the transaction without putting data at
 * risk: a failed one leaves at most an INVALID index or an unused enum value,
 * which a retry cleans up; no row is changed.
 */
const HARMLESS_OUTSIDE = new Set(['IndexStmt', 'ReindexStmt', 'AlterEnumStmt', 'VacuumStmt', 'VacuumStmtList']);

/** Statements that rewrite existing rows in place: verification sees row counts, not values. */
const ROW_CHANGES: Record<string, string> = { UpdateStmt: 'UPDATE', DeleteStmt: 'DELETE', MergeStmt: 'MERGE' };

/** The part of a migration an upgrade is about to run (all of it, or what a failed run left). */
export interface PendingPart {
  readonly migration: ParsedMigration;
  readonly statements: readonly Statement[];
}

const cache = new WeakMap<LintReport, Map<string, Map<number, string[]>>>();

/**
 * Why an upgrade through `pending` should be backed up first under the `risky`
 * policy: something that removes or rewrites existing data where the
 * all-or-nothing transaction and verification cannot bring it back — a
 * destructive statement (allowed or not), a column type change, an UPDATE,
 * DELETE or MERGE of existing rows, or a statement outside the transaction that
 * is more than an index build or an enum value. Empty: no backup needed.
 */
export function backupRisks(pending: readonly PendingPart[], lint: LintReport): string[] {
  let byMigration = cache.get(lint);
  if (!byMigration) {
    byMigration = risksByLine(lint);
    cache.set(lint, byMigration);
  }
  const reasons: string[] = [];
  for (const { migration, statements } of pending) {
    const findings = byMigration.get(migration.id);
    for (const statement of statements) {
      const found = findings?.get(statement.line) ?? [];
      reasons.push(...found);
      const reason = statementRisk(statement);
      // A DELETE or UPDATE without WHERE is already there as its finding.
      if (reason && found.length === 0) reasons.push(`${reason} at ${migration.path}:${statement.line}`);
    }
  }
  return reasons;
}

/** Data-changing findings by migration id, then by the line of their statement. */
function risksByLine(lint: LintReport): Map<string, Map<number, string[]>> {
  const map = new Map<string, Map<number, string[]>>();
  for (const finding of lint.findings) {
    if (!changesData(finding.code)) continue;
    const lines = map.get(finding.migration) ?? new Map<number, string[]>();
    lines.set(finding.line, [...(lines.get(finding.line) ?? []), `${finding.code} at ${finding.file}:${finding.line}`]);
    map.set(finding.migration, lines);
  }
  return map;
}
function statementRisk(statement: Statement): string | undefined {
  const rowChange = ROW_CHANGES[statement.kind];
  if (rowChange) return `${rowChange} of existing rows`;
  if (!statement.nonTransactional || HARMLESS_OUTSIDE.has(statement.kind)) return undefined;
  if (statement.kind === 'DropStmt' && unwrap(statement.node).removeType === 'OBJECT_INDEX') return undefined;
  return `${statement.kind.replace(/Stmt$/, '')} outside the transaction`;
}
