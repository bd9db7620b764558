import type { ParsedMigration, Statement } from './migration.js';
import type { Plan } from './plan.js';

export interface ScheduledStatement {
  readonly migration: ParsedMigration;
  readonly statement: Statement;
}

/** What a phase writes to the history table once it has run: the statements each migration still has to run. */
export interface HistoryUpdate {
  readonly migration: ParsedMigration;
  readonly remaining: readonly number[];
}

/** The part of a migration an upgrade is about to run: all of it, or what a failed run left. */
export interface PendingPart {
  readonly migration: ParsedMigration;
  readonly statements: readonly Statement[];
}

export function pendingParts(plan: Plan<ParsedMigration>): PendingPart[] {
  return plan.steps.map((step) => ({ migration: step.migration, statements: step.statements.map((i) => step.migration.statements[i]!) }));
}

export type Phase =
  | { readonly kind: 'transaction'; readonly statements: readonly ScheduledStatement[]; readonly history: readonly HistoryUpdate[] }
  | { readonly kind: 'outside'; readonly statement: ScheduledStatement; readonly reason: string; readonly history: readonly HistoryUpdate[] };

export interface Split {
  readonly before: string;
  readonly reason: string;
}

export interface Schedule {
  readonly phases: readonly Phase[];
  /** Why the transactional statements could not all share one transaction (empty in the common case). */
  readonly splits: readonly Split[];
}

/**
 * Orders a plan's statements into phases. Every transactional statement goes into
 * one transaction together with the history rows; statements that cannot run in a
 * transaction block are deferred until after its commit. A later statement that
 * depends on a deferred one, or uses an enum value added earlier in the same
 * transaction, closes the transaction first; each such split is reported.
 */
export function schedule(plan: Plan<ParsedMigration>): Schedule {
  const remaining = new Map<ParsedMigration, Set<number>>(plan.steps.map((s) => [s.migration, new Set(s.statements)]));
  const unrecorded = new Set(plan.steps.map((s) => s.migration));
  const phases: Phase[] = [];
  const splits: Split[] = [];
  let current: ScheduledStatement[] = [];
  let deferred: ScheduledStatement[] = [];
  let newEnumValues = new Map<string, ScheduledStatement>();

  const historyAfter = (ran: readonly ScheduledStatement[]): HistoryUpdate[] => {
    const touched = new Set<ParsedMigration>();
    for (const { migration, statement } of ran) {
      remaining.get(migration)?.delete(statement.index);
      touched.add(migration);
    }
    // The first phase records every planned migration, so that a crash before a
    // deferred statement leaves a row saying exactly what is still to run.
    for (const migration of unrecorded) touched.add(migration);
    unrecorded.clear();
    return [...touched].map((migration) => ({ migration, remaining: [...(remaining.get(migration) ?? [])].sort((a, b) => a - b) }));
  };

  const flush = (): void => {
    if (current.length > 0 || phases.length === 0) {
      phases.push({ kind: 'transaction', statements: current, history: historyAfter(current) });
    }
    for (const item of deferred) {
      phases.push({ kind: 'outside', statement: item, reason: item.statement.nonTransactional ?? '', history: historyAfter([item]) });
    }
    current = [];
    deferred = [];
    newEnumValues = new Map();
  };

  for (const step of plan.steps) {
    for (const index of step.statements) {
      const statement = step.migration.statements[index]!;
      const item = { migration: step.migration, statement };
      if (statement.nonTransactional) {
        deferred.push(item);
        continue;
      }
      const reason = splitReason(item, deferred, newEnumValues);
      if (reason) {
        splits.push({ before: where(item), reason });
        flush();
      }
      current.push(item);
      if (statement.addsEnumValue) newEnumValues.set(statement.addsEnumValue, item);
    }
  }
  flush();
  return { phases, splits };
}

function where({ migration, statement }: ScheduledStatement): string {
  return `${migration.path}:${statement.line}`;
}

function splitReason(item: ScheduledStatement, deferred: readonly ScheduledStatement[], newEnumValues: ReadonlyMap<string, ScheduledStatement>): string | undefined {
  const { statement } = item;
  for (const earlier of deferred) {
    const shared = statement.touches.find((name) => earlier.statement.touches.includes(name) && !(name === earlier.statement.indexedTable && statement.safeBeforeIndexBuild));
    if (shared !== undefined || statement.opaque || earlier.statement.opaque) {
      const why = shared !== undefined ? `both touch "${shared}"` : 'its effects cannot be read from the SQL';
      return `it must run after ${where(earlier)} (${earlier.statement.nonTransactional}, which runs outside a transaction): ${why}`;
    }
  }
  for (const [value, adder] of newEnumValues) {
    if (statement.strings.some((s) => s === value || s.includes(`'${value}'`))) {
      return `it uses enum value '${value}' added at ${where(adder)}; PostgreSQL only allows a new enum value to be used after the transaction that added it commits`;
    }
  }
  return undefined;
}
