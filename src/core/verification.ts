import type { ParsedMigration, Statement } from './migration.js';
import type { Plan } from './plan.js';
import { isNode, stringField, unwrap } from './sql/ast.js';

/** What one table looked like: its rows and the data in each column. */
export interface TableFingerprint {
  readonly schema: string;
  readonly table: string;
  readonly rows: number;
  /** Non-NULL values per column. */
  readonly columns: Readonly<Record<string, number>>;
}

/**
 * One table between two moments, as the database compared it: the counts, and
 * for tables small enough to hash (verify.checksumMaxRows), which rows of the
 * first moment are gone or replaced and which columns had values overwritten.
 */
export interface TableComparison {
  readonly before: TableFingerprint;
  /** null: the table is gone. */
  readonly after: TableFingerprint | null;
  /** Rows of the first moment no longer there as they were (by key, or by whole content without one); null: not hashed. */
  readonly missingRows: number | null;
  /** Rows still there by key whose values changed, per column (names of the first moment); null: not hashed or no key. */
  readonly changedColumns: Readonly<Record<string, number>> | null;
  /** Rows still there by key with any value changed. */
  readonly changedRows: number;
  /** Whether the table has a primary key (rows are matched by it). */
  readonly keyed: boolean;
}

/** Statements between two moments of one table: the loss found there is theirs. */
export interface Segment {
  readonly statements: readonly Statement[];
  /** When the segment is exactly one statement carrying allows: the losses it may accept. */
  readonly allowing?: Statement;
  /** Tables whose rows go with a table's (foreign keys ON DELETE CASCADE / SET NULL): parent → children. */
  readonly cascades?: ReadonlyMap<string, readonly string[]>;
}

/** The relations a plan can take data from: named ones, or every table when some statement's effect cannot be read. */
export interface AffectedRelations {
  readonly all: boolean;
  readonly names: ReadonlySet<string>;
}

/** Statement kinds that read (or refresh) relations as they run: a view among them runs its query. */
const READING_KINDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CreateTableAsStmt', 'ExplainStmt', 'RefreshMatViewStmt', 'CopyStmt']);

/**
 * The relations whose existing triggers, rules, defaults, checks, index
 * expressions or view queries may run during the statements: those they write,
 * and those data statements read.
 */
export function relationsRun(statements: readonly Statement[]): string[] {
  const names = new Set<string>();
  for (const statement of statements) {
    for (const name of statement.writes) names.add(name);
    if (READING_KINDS.has(statement.kind)) for (const name of statement.touches) names.add(name);
  }
  return [...names];
}

/** Every statement of a plan, in order. */
export function planStatements(plan: Plan<ParsedMigration>): Statement[] {
  return plan.steps.flatMap((step) => step.statements.map((index) => step.migration.statements[index]!));
}

/**
 * What the statements can take data from: the tables they change themselves, or
 * every table when one reaches further than it says (a call, procedural code,
 * CASCADE) or changes what later statements do (a trigger, a rule, a function).
 */
export function affectedRelations(plan: Plan<ParsedMigration> | readonly Statement[]): AffectedRelations {
  const statements = Array.isArray(plan) ? (plan as readonly Statement[]) : planStatements(plan as Plan<ParsedMigration>);
  const names = new Set<string>();
  let all = false;
  for (const statement of statements) {
    if (statement.unbounded !== undefined || statement.changesLaterEffects) all = true;
    // Adding a column, an index, a constraint or rows cannot lose data: nothing to compare for it.
    if (!statement.keepsData) for (const name of statement.writes) names.add(name);
  }
  // A table renamed by the plan is changed under its new name: it is watched under the name it has now.
  for (const [from, to] of planRenames(statements).tables) if (names.has(to)) names.add(from);
  return { all, names };
}

/** Table and column renames in plan order: old name → new name. */
export interface Renames {
  readonly tables: ReadonlyMap<string, string>;
  /** Keyed by `<table>.<column>` with the table's name before the plan. */
  readonly columns: ReadonlyMap<string, string>;
}

export function planRenames(plan: Plan<ParsedMigration> | readonly Statement[]): Renames {
  const statements = Array.isArray(plan) ? (plan as readonly Statement[]) : planStatements(plan as Plan<ParsedMigration>);
  const tables = new Map<string, string>();
  const columns = new Map<string, string>();
  const originalOf = (name: string) => [...tables.entries()].find(([, now]) => now === name)?.[0] ?? name;
  for (const statement of statements) {
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
  return { tables, columns };
}

export type LossKind = 'table' | 'rows' | 'column' | 'values' | 'large-objects';

export interface Loss {
  readonly kind: LossKind;
  readonly code: 'FV701' | 'FV702' | 'FV703' | 'FV704' | 'FV705' | 'FV706';
  readonly table: string;
  readonly column?: string;
  readonly before: number;
  /** null: the table or column is gone. */
  readonly after: number | null;
  /** For rows: how many of those present before were replaced by other rows (counts alone cannot see it). */
  readonly replaced?: number;
  readonly allowedBecause: string | null;
}

/** Existing values overwritten in one table: reported, and with verify.values "refuse", refused unless allowed. */
export interface Overwrite {
  readonly table: string;
  readonly columns: readonly string[];
  readonly rows: number;
  readonly allowedBecause: string | null;
}

/** Codes of an allow directive that accept each kind of loss, on the statement that causes it. */
const ACCEPTED: Record<LossKind, readonly string[]> = {
  table: ['FV702', 'FD102', 'FD101', 'FD108', 'FD109'],
  rows: ['FV701', 'FD104', 'FD105', 'FD102', 'FD108', 'FD109'],
  column: ['FV703', 'FD103', 'FD106', 'FD108', 'FD110'],
  values: ['FV704', 'FV705', 'FM204', 'FD106'],
  'large-objects': ['FV706', 'FD111'],
};

/**
 * The losses in one table between two moments. Removed rows take their values
 * with them: a column lost data only when it is gone, or when it lost more
 * values than the table lost rows (values set to NULL). Rows replaced by as many
 * others (a table without a key) are lost rows too, unless a statement of the
 * segment overwrites that table's values (then they are overwrites).
 */
export function tableLosses(comparison: TableComparison, segment: Segment, renames: Renames): Omit<Loss, 'allowedBecause'>[] {
  const { before: old, after: now } = comparison;
  // An empty table, or a column without values, that a statement drops by name held nothing; one that
  // disappears through a dependency (CASCADE, a dropped type or extension) is a loss all the same.
  const named = segment.statements.some((s) => s.removes && s.writes.includes(old.table));
  if (now === null) return old.rows === 0 && named ? [] : [{ kind: 'table', code: 'FV702', table: old.table, before: old.rows, after: null }];
  const losses: Omit<Loss, 'allowedBecause'>[] = [];
  const rowsLost = Math.max(0, old.rows - now.rows);
  const overwritten = segment.statements.some((s) => s.overwrites && s.writes.includes(old.table)) || segment.statements.some((s) => s.unbounded !== undefined);
  const missing = comparison.missingRows ?? rowsLost;
  // Without a key, a changed row is a missing one: an overwrite when a statement overwrites this table.
  const replaced = Math.max(0, missing - rowsLost);
  if (rowsLost > 0 || (replaced > 0 && (comparison.keyed || !overwritten))) {
    losses.push({ kind: 'rows', code: 'FV701', table: old.table, before: old.rows, after: old.rows - missing, ...(replaced > 0 ? { replaced } : {}) });
  }
  for (const [column, values] of Object.entries(old.columns)) {
    const renamed = renames.columns.get(`${old.table}.${column}`) ?? column;
    const remaining = now.columns[renamed];
    if (remaining === undefined || values - remaining > rowsLost) {
      if (values === 0 && (remaining !== undefined || named)) continue;
      losses.push({ kind: 'column', code: 'FV703', table: old.table, column, before: values, after: remaining ?? null });
    }
  }
  return losses;
}

/** The overwrites in one table between two moments (rows matched by key; without one, rows replaced under an overwriting statement). */
export function tableOverwrites(comparison: TableComparison, segment: Segment): Omit<Overwrite, 'allowedBecause'> | undefined {
  const { before: old, after: now } = comparison;
  if (now === null) return undefined;
  if (comparison.keyed && comparison.changedColumns) {
    const columns = Object.entries(comparison.changedColumns)
      .filter(([, n]) => n > 0)
      .map(([c]) => c);
    return columns.length > 0 ? { table: old.table, columns, rows: comparison.changedRows } : undefined;
  }
  const overwritten = segment.statements.some((s) => (s.overwrites && s.writes.includes(old.table)) || s.unbounded !== undefined);
  const replaced = Math.max(0, (comparison.missingRows ?? 0) - Math.max(0, old.rows - now.rows));
  return overwritten && replaced > 0 ? { table: old.table, columns: [], rows: replaced } : undefined;
}

/**
 * Why a loss in a table is accepted: only by an allow, with a reason, on the
 * statement the segment is made of, for a table that statement changes itself
 * (or whose rows go with one it changes, by a foreign key's action); a statement
 * whose effect cannot be read accepts what its own segment measured.
 */
export function allowanceFor(kind: LossKind, table: string, segment: Segment, renames: Renames): string | null {
  const statement = segment.allowing;
  if (!statement) return null;
  const allow = statement.allows.find((a) => a.reason !== '' && a.codes.some((code) => ACCEPTED[kind].includes(code)));
  if (!allow) return null;
  if (statement.unbounded !== undefined || kind === 'large-objects') return allow.reason;
  const names = new Set([table, renames.tables.get(table) ?? table]);
  const reached = new Set<string>();
  const visit = (name: string) => {
    if (reached.has(name)) return;
    reached.add(name);
    for (const child of segment.cascades?.get(name) ?? []) visit(child);
  };
  for (const name of statement.writes) visit(name);
  if (kind === 'table' && statement.kind === 'DropStmt' && unwrap(statement.node).removeType === 'OBJECT_SCHEMA') return allow.reason;
  return [...names].some((name) => reached.has(name)) ? allow.reason : null;
}

export function describeLoss(loss: Loss): string {
  const what = loss.column ? `${loss.table}.${loss.column}` : loss.table;
  if (loss.kind === 'large-objects') return `large objects: ${loss.before} before, ${loss.after ?? 0} of them left as they were (${loss.code})`;
  if (loss.kind === 'values') return `${what}: ${loss.before} values would not convert back to what they were (${loss.code})`;
  const unit = loss.kind === 'column' ? 'values' : 'rows';
  const after = loss.after === null ? `${loss.kind} gone` : `${loss.after} ${unit} after`;
  const replaced = loss.replaced ? `, ${loss.replaced} of them replaced by other rows` : '';
  return `${what}: ${loss.before} ${unit} before, ${after}${replaced} (${loss.code})`;
}

export function describeOverwrite(overwrite: Overwrite): string {
  const columns = overwrite.columns.length === 0 ? 'values' : `${overwrite.columns.length} column${overwrite.columns.length > 1 ? 's' : ''} (${overwrite.columns.join(', ')})`;
  return `${columns} of ${overwrite.table} had values overwritten in ${overwrite.rows} row${overwrite.rows === 1 ? '' : 's'}`;
}
