import type { Statement } from '../core/migration.js';
import type { PendingPart } from '../core/schedule.js';
import type { LintReport } from '../lint/lint.js';
import { changesData } from '../lint/codes.js';

/** Statements that change or remove existing rows: verification sees row and value counts, not the values themselves. */
const ROW_CHANGES: Record<string, string> = { UpdateStmt: 'UPDATE', DeleteStmt: 'DELETE', MergeStmt: 'MERGE' };

const cache = new WeakMap<LintReport, Map<string, Map<number, string[]>>>();

/**
 * Why an upgrade through `pending` should be backed up first under the `risky`
 * policy: something that removes or rewrites existing data where the
 * all-or-nothing transaction and verification cannot bring it back — a
 * destructive statement (allowed or not), a column type change, an UPDATE,
 * DELETE, MERGE or upsert of existing rows, a DO block or CALL, or a statement
 * outside the transaction that is more than an index build or drop, an enum
 * value, REINDEX or VACUUM. Empty: no backup needed.
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
  // A plain INSERT only adds rows; ON CONFLICT DO UPDATE overwrites some.
  if (statement.kind === 'InsertStmt' && !statement.keepsData) return 'INSERT … ON CONFLICT DO UPDATE of existing rows';
  // DO and CALL run code whose effect cannot be read from the statement.
  if (statement.kind === 'DoStmt' || statement.kind === 'CallStmt') return `${statement.kind === 'DoStmt' ? 'DO block' : 'CALL'}, whose effect cannot be read`;
  // Outside the transaction, what could take data cannot be rolled back: only an index build or
  // drop, an enum value, REINDEX or VACUUM (statements that keep every row) need no backup.
  if (statement.nonTransactional && !statement.keepsData) return `${statement.kind.replace(/Stmt$/, '')} outside the transaction`;
  return undefined;
}
