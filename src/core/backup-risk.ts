import type { Statement } from './migration.js';
import type { PendingPart } from './schedule.js';
import type { LintReport } from './lint/lint.js';
import { changesData } from './lint/codes.js';

/** Statements that change or remove existing rows. */
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
  // What reaches further than it says (a call, procedural code, CASCADE, a drop others depend on).
  if (statement.unbounded !== undefined) return `${statement.unbounded}, whose effect cannot be bounded`;
  const rowChange = ROW_CHANGES[statement.kind];
  if (rowChange) return `${rowChange} of existing rows`;
  // A plain INSERT only adds rows; an upsert overwrites some, and DML nested in it may do anything DML does.
  if (statement.overwrites) return `${describeKind(statement)} that overwrites values of existing rows`;
  if (statement.removes) return `${describeKind(statement)} that removes existing data`;
  // Outside the transaction, what could take data cannot be rolled back: only an index build or
  // drop, an enum value, REINDEX or VACUUM (statements that keep every row) need no backup.
  if (statement.nonTransactional && !statement.keepsData) return `${describeKind(statement)} outside the transaction`;
  return undefined;
}

function describeKind(statement: Statement): string {
  return statement.kind === 'InsertStmt' ? 'INSERT' : statement.kind.replace(/Stmt$/, '');
}
