import type { ParsedMigration, Statement } from './migration.js';
import type { Plan } from './plan.js';
import { isNode, stringField, unwrap, walk } from './sql/ast.js';

/** What one table looked like: its rows, the data in each column, and (small tables) which keys it held. */
export interface TableFingerprint {
  readonly schema: string;
  readonly table: string;
  readonly rows: number;
  /** Non-NULL values per column. */
  readonly columns: Readonly<Record<string, number>>;
  /** 64-bit hashes of the primary keys, for tables up to verify.checksumMaxRows rows with a primary key. */
  readonly keys: readonly string[] | null;
}

/** The relations a plan can take data from: named ones, or every table when some statement's effect cannot be read. */
export interface AffectedRelations {
  readonly all: boolean;
  readonly names: ReadonlySet<string>;
}

/**
 * Beyond the statements whose own effects cannot be read (`statement.opaque`),
 * these change what later statements do to other tables: a trigger or rule fires
 * on them, a function may be called by them, a prepared statement runs anything.
 */
const CHANGES_LATER_EFFECTS = new Set(['CreateFunctionStmt', 'CreateTrigStmt', 'ExecuteStmt', 'RuleStmt']);

export function affectedRelations(plan: Plan<ParsedMigration>): AffectedRelations {
  const names = new Set<string>();
  let all = false;
  for (const step of plan.steps) {
    for (const index of step.statements) {
      const statement = step.migration.statements[index]!;
      if (statement.unbounded !== undefined || statement.changesLaterEffects || CHANGES_LATER_EFFECTS.has(statement.kind)) all = true;
      // Adding a column, an index or a constraint cannot lose data: nothing to compare for it.
      if (!statement.keepsData) for (const name of statement.writes) names.add(name);
    }
  }
  return { all, names };
}

/** Table and column renames in plan order: old name → new name. */
export interface Renames {
  readonly tables: ReadonlyMap<string, string>;
  /** Keyed by `<table>.<column>` with the table's name before the plan. */
  readonly columns: ReadonlyMap<string, string>;
}

export function planRenames(plan: Plan<ParsedMigration>): Renames {
  const tables = new Map<string, string>();
  const columns = new Map<string, string>();
  const originalOf = (name: string) => [...tables.entries()].find(([, now]) => now === name)?.[0] ?? name;
  for (const step of plan.steps) {
    for (const index of step.statements) {
      const statement = step.migration.statements[index]!;
      if (statement.kind !== 'RenameStmt') continue;
      const body = unwrap(statement.node);
      const relation = isNode(body.relation) ? stringField(body.relation, 'relname') : undefined;
      const newname = stringField(body, 'newname');
      if (!relation || !newname) continue;
      if (body.renameType === 'OBJECT_TABLE') tables.set(originalOf(relation), newname);
      if (body.renameType === 'OBJECT_COLUMN') {
        const subname = stringField(body, 'subname');
        if (!subname) continue;
        const table = originalOf(relation);
        const original = [...columns.entries()].find(([key, now]) => key.startsWith(`${table}.`) && now === subname)?.[0] ?? `${table}.${subname}`;
        columns.set(original, newname);
      }
    }
  }
  return { tables, columns };
}

export type LossKind = 'table' | 'rows' | 'column';

export interface Loss {
  readonly kind: LossKind;
  readonly code: 'FV701' | 'FV702' | 'FV703';
  readonly table: string;
  readonly column?: string;
  readonly before: number;
  /** null: the table or column is gone. */
  readonly after: number | null;
  readonly allowedBecause: string | null;
}

/** Codes of an allow directive that accept each kind of loss, on a statement that touches the table. */
const ACCEPTED: Record<LossKind, readonly string[]> = {
  table: ['FV702', 'FD102', 'FD101', 'FD108', 'FD109'],
  rows: ['FV701', 'FD104', 'FD105', 'FD102', 'FD108', 'FD109'],
  column: ['FV703', 'FD103', 'FD106', 'FD108', 'FD110'],
};

/**
 * Compares the fingerprints taken before and after the plan's statements (in
 * the same transaction). Renamed tables and columns are followed. A loss is
 * allowed only by an allow directive, with a reason, on a statement of the plan
 * that touches that table.
 */
export function findLosses(
  before: readonly TableFingerprint[],
  after: ReadonlyMap<string, TableFingerprint | null>,
  plan: Plan<ParsedMigration>,
): Loss[] {
  const losses: Omit<Loss, 'allowedBecause'>[] = [];
  const renames = planRenames(plan);
  for (const old of before) {
    const now = after.get(`${old.schema}.${old.table}`);
    if (now === undefined) continue;
    if (now === null) {
      losses.push({ kind: 'table', code: 'FV702', table: old.table, before: old.rows, after: null });
      continue;
    }
    const lostKeys = old.keys && now.keys ? countMissing(old.keys, now.keys) : 0;
    if (now.rows < old.rows || lostKeys > 0) losses.push({ kind: 'rows', code: 'FV701', table: old.table, before: old.rows, after: now.rows - (now.rows < old.rows ? 0 : lostKeys) });
    // Removed rows take their values with them: a column lost data only when it is
    // gone, or when it lost more values than the table lost rows (values set to NULL).
    const rowsLost = Math.max(0, old.rows - now.rows);
    for (const [column, values] of Object.entries(old.columns)) {
      if (values === 0) continue;
      const renamed = renames.columns.get(`${old.table}.${column}`) ?? column;
      const remaining = now.columns[renamed];
      if (remaining === undefined || values - remaining > rowsLost) {
        losses.push({ kind: 'column', code: 'FV703', table: old.table, column, before: values, after: remaining ?? null });
      }
    }
  }
  return losses.map((loss) => ({ ...loss, allowedBecause: allowanceFor(loss, plan, renames) }));
}

function countMissing(before: readonly string[], after: readonly string[]): number {
  const present = new Set(after);
  return before.filter((key) => !present.has(key)).length;
}

function allowanceFor(loss: Omit<Loss, 'allowedBecause'>, plan: Plan<ParsedMigration>, renames: Renames): string | null {
  const names = new Set([loss.table, renames.tables.get(loss.table) ?? loss.table]);
  for (const step of plan.steps) {
    for (const index of step.statements) {
      const statement = step.migration.statements[index]!;
      const touchesTable = statement.touches.some((name) => names.has(name)) || (loss.kind === 'table' && statement.kind === 'DropStmt' && unwrap(statement.node).removeType === 'OBJECT_SCHEMA');
      if (!touchesTable) continue;
      const allow = statement.allows.find((a) => a.reason !== '' && a.codes.some((code) => ACCEPTED[loss.kind].includes(code)));
      if (allow) return allow.reason;
    }
  }
  return null;
}

export function describeLoss(loss: Loss): string {
  const what = loss.column ? `${loss.table}.${loss.column}` : loss.table;
  const unit = loss.kind === 'column' ? 'values' : 'rows';
  const after = loss.after === null ? `${loss.kind} gone` : `${loss.after} ${unit} after`;
  return `${what}: ${loss.before} ${unit} before, ${after} (${loss.code})`;
}
