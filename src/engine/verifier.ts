import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import type { Statement } from '../core/migration.js';
import type { Loss, Overwrite, Segment, TableComparison, TableFingerprint } from '../core/verification.js';
import { affectedRelations, allowanceFor, describeLoss, describeOverwrite, planRenames, tableLosses, tableOverwrites } from '../core/verification.js';
import type { TableInfo } from '../postgres/fingerprint.js';
import {
  affectedTables,
  compareLargeObjects,
  compareWithHashed,
  countTable,
  dropHashed,
  hashLargeObjects,
  hashTable,
  tableNow,
  tablesHoldingRows,
} from '../postgres/fingerprint.js';
import { typeChangeLosses } from '../postgres/type-change.js';

export interface VerifierOptions {
  readonly tenant: string;
  /** The tenant's schemas (null: every schema of a database tenant's database). */
  readonly schemas: readonly string[] | null;
  /** Tables up to this many rows are hashed row by row: replaced rows and overwritten values are seen. */
  readonly checksumMaxRows: number;
  /** Overwritten values: reported, or refused unless allowed (FV705). */
  readonly values: 'report' | 'refuse';
  /**
   * Runs Flotilla's own queries where the tenant's functions cannot stand in
   * for the built-in ones (a schema tenant's: its search_path set to
   * pg_catalog meanwhile). Default: as they are.
   */
  readonly guard?: <T>(work: () => Promise<T>) => Promise<T>;
  /**
   * Triggers, rules or functions of the tenant's (or made by the same plan) run
   * during the plan's statements, as the engine found in the catalog: every
   * table is compared.
   */
  readonly reachesThroughCatalog: boolean;
  /** Counts rows with a query of the migration's own expressions, as the tenant (its role for a schema tenant). */
  readonly countAsTenant?: (sql: string) => Promise<number>;
}

/** One table being watched: how it was at its last checkpoint. */
interface Watched {
  info: TableInfo;
  fingerprint: TableFingerprint;
  hashed: string | null;
  /** Index in `executed` of the first statement since that checkpoint. */
  from: number;
}

/**
 * Compares what a run of statements changed: the tables they can affect (or
 * every table of the tenant, and its large objects, when one reaches further
 * than it says) are fingerprinted before, around each statement that carries an
 * allow, and after. A loss is accepted only when it happened within one
 * statement whose allow covers it, for a table that statement changes.
 */
export class Verifier {
  private watched: Watched[] = [];
  private largeObjects: { table: string; count: number; contents: boolean; from: number } | undefined;
  private executed: Statement[] = [];
  private readonly allowed: Loss[] = [];
  private readonly overwrites: Overwrite[] = [];
  private tablesCompared = 0;

  constructor(
    private readonly client: pg.ClientBase,
    private readonly options: VerifierOptions,
  ) {}

  /** Starts watching before `statements` run (a transaction's, or one statement outside any). */
  async begin(statements: readonly Statement[]): Promise<void> {
    await this.guarded(() => this.start(statements));
  }

  private guarded<T>(work: () => Promise<T>): Promise<T> {
    return this.options.guard ? this.options.guard(work) : work();
  }

  private async start(statements: readonly Statement[]): Promise<void> {
    this.executed = [];
    const affected = affectedRelations(statements);
    // A trigger or rule on a table the statements write to (a plain INSERT included) may change any other table.
    const all = affected.all || this.options.reachesThroughCatalog;
    const tables = all || affected.names.size > 0 ? await affectedTables(this.client, this.options.schemas, { all, names: affected.names }) : [];
    const holding = await tablesHoldingRows(this.client, tables);
    this.watched = [];
    for (const [i, info] of tables.entries()) this.watched.push(await this.snapshot(info, holding.has(i)));
    this.tablesCompared += tables.length;
    this.largeObjects = all ? { ...(await hashLargeObjects(this.client)), from: 0 } : undefined;
  }

  /**
   * Runs one statement, with checkpoints around it when it carries an allow, and
   * its type changes checked first.
   */
  async around(statement: Statement, run: () => Promise<void>): Promise<void> {
    const lossy = await typeChangeLosses(this.client, statement, this.options.countAsTenant);
    for (const loss of lossy) {
      const allowedBecause = allowanceFor('values', loss.table, { statements: [statement], allowing: statement }, planRenames([]));
      if (allowedBecause === null) throw this.lossError([{ ...loss, allowedBecause }], false);
      this.allowed.push({ ...loss, allowedBecause });
    }
    const allows = statement.allows.some((a) => a.reason !== '');
    const reached = allows ? this.reachedBy(statement) : [];
    if (reached.length > 0) await this.guarded(() => this.checkpoint(reached, undefined));
    await run();
    this.executed.push(statement);
    if (reached.length > 0) await this.guarded(() => this.checkpoint(reached, statement));
  }

  /**
   * Compares everything watched with how it is now. `committed`: the statements
   * ran outside a transaction, so a loss cannot be rolled back any more.
   */
  async check(options: { committed?: boolean } = {}): Promise<void> {
    await this.guarded(() => this.finish(options));
  }

  private async finish(options: { committed?: boolean }): Promise<void> {
    try {
      const refused = await this.compare(this.watched, undefined);
      if (this.largeObjects) {
        const gone = await compareLargeObjects(this.client, this.largeObjects);
        if (gone > 0) {
          const loss: Omit<Loss, 'allowedBecause'> = {
            kind: 'large-objects',
            code: 'FV706',
            table: 'large objects',
            before: this.largeObjects.count,
            after: this.largeObjects.count - gone,
          };
          // Large objects are not a table's: accepted only when one statement alone could reach them, with its allow.
          const reaching = this.executed.filter((s) => s.unbounded !== undefined || s.changesLaterEffects);
          const allowedBecause = reaching.length === 1 ? allowanceFor('large-objects', loss.table, { statements: this.executed, allowing: reaching[0]! }, planRenames([])) : null;
          if (allowedBecause === null) refused.push({ ...loss, allowedBecause });
          else this.allowed.push({ ...loss, allowedBecause });
        }
      }
      if (refused.length > 0) throw this.lossError(refused, options.committed ?? false);
      const unallowedOverwrites = this.options.values === 'refuse' ? this.overwrites.filter((o) => o.allowedBecause === null) : [];
      if (unallowedOverwrites.length > 0) throw this.overwriteError(unallowedOverwrites, options.committed ?? false);
    } finally {
      for (const table of this.watched) if (table.hashed) await dropHashed(this.client, table.hashed).catch(() => undefined);
      if (this.largeObjects) await dropHashed(this.client, this.largeObjects.table).catch(() => undefined);
      this.watched = [];
      this.largeObjects = undefined;
    }
  }

  summary(): { tables: number; allowedLosses: Loss[]; overwrites: Overwrite[] } {
    return { tables: this.tablesCompared, allowedLosses: [...this.allowed], overwrites: [...this.overwrites] };
  }

  /** Watched tables a statement may change itself (and those its foreign keys' actions reach), or all when it cannot be read. */
  private reachedBy(statement: Statement): Watched[] {
    if (statement.unbounded !== undefined || statement.changesLaterEffects) return this.watched;
    const names = new Set(statement.writes);
    let grew = true;
    while (grew) {
      grew = false;
      for (const table of this.watched) {
        if (!names.has(table.info.table) && table.info.cascadesFrom.some((parent) => names.has(parent))) {
          names.add(table.info.table);
          grew = true;
        }
      }
    }
    return this.watched.filter((t) => names.has(t.info.table));
  }

  /** Compares the given tables since their last checkpoint (the segment closed by `closing`, when given), then watches them again from here. */
  private async checkpoint(tables: Watched[], closing: Statement | undefined): Promise<void> {
    const refused = await this.compare(tables, closing);
    if (refused.length > 0) throw this.lossError(refused, false);
    for (const table of tables) {
      if (table.hashed) await dropHashed(this.client, table.hashed);
      const now = await tableNow(this.client, table.info.schema, this.currentName(table));
      if (!now) {
        this.watched = this.watched.filter((t) => t !== table);
        continue;
      }
      const fresh = await this.snapshot(now, (await tablesHoldingRows(this.client, [now])).size > 0);
      Object.assign(table, fresh, { from: this.executed.length });
    }
  }

  /** The losses (refused ones returned, allowed ones kept) and overwrites of each table since its last checkpoint. */
  private async compare(tables: readonly Watched[], closing: Statement | undefined): Promise<Loss[]> {
    const refused: Loss[] = [];
    for (const table of tables) {
      const statements = this.executed.slice(table.from);
      const renames = planRenames(statements);
      const cascades = new Map<string, string[]>();
      for (const t of this.watched) for (const parent of t.info.cascadesFrom) cascades.set(parent, [...(cascades.get(parent) ?? []), t.info.table]);
      const segment: Segment = { statements, cascades, ...(closing && statements.length === 1 ? { allowing: closing } : {}) };
      const comparison = await this.comparison(table, renames.columns);
      for (const loss of tableLosses(comparison, segment, renames)) {
        const allowedBecause = allowanceFor(loss.kind, loss.table, segment, renames);
        if (allowedBecause === null) refused.push({ ...loss, allowedBecause });
        else this.allowed.push({ ...loss, allowedBecause });
      }
      const overwrite = tableOverwrites(comparison, segment);
      if (overwrite) this.overwrites.push({ ...overwrite, allowedBecause: allowanceFor('values', overwrite.table, segment, renames) });
    }
    return refused;
  }

  private async comparison(table: Watched, columnRenames: ReadonlyMap<string, string>): Promise<TableComparison> {
    const now = await tableNow(this.client, table.info.schema, this.currentName(table));
    const before = table.fingerprint;
    if (!now) return { before, after: null, missingRows: null, changedColumns: null, changedRows: 0, keyed: false };
    // An empty table can lose nothing but itself or its columns: no scan.
    if (before.rows === 0)
      return { before, after: { ...before, columns: Object.fromEntries(now.columns.map((c) => [c, 0])) }, missingRows: 0, changedColumns: null, changedRows: 0, keyed: false };
    const after = await countTable(this.client, now);
    const local = new Map([...columnRenames].filter(([key]) => key.startsWith(`${table.info.table}.`)).map(([key, to]) => [key.slice(table.info.table.length + 1), to]));
    const hashed = table.hashed
      ? await compareWithHashed(this.client, table.hashed, table.info, now, local)
      : { missingRows: null, changedColumns: null, changedRows: 0, keyed: false };
    return { before, after: { ...after, table: before.table }, ...hashed };
  }

  /** The table's name now: its name at the checkpoint, followed through the renames since. */
  private currentName(table: Watched): string {
    return planRenames(this.executed.slice(table.from)).tables.get(table.info.table) ?? table.info.table;
  }

  private async snapshot(info: TableInfo, holdsRows: boolean): Promise<Watched> {
    if (!holdsRows)
      return {
        info,
        fingerprint: { schema: info.schema, table: info.table, rows: 0, columns: Object.fromEntries(info.columns.map((c) => [c, 0])) },
        hashed: null,
        from: this.executed.length,
      };
    const fingerprint = await countTable(this.client, info);
    const hashed = fingerprint.rows <= this.options.checksumMaxRows ? await hashTable(this.client, info) : null;
    return { info, fingerprint, hashed, from: this.executed.length };
  }

  private lossError(refused: readonly Loss[], committed: boolean): FlotillaError {
    const tenant = this.options.tenant;
    const what = committed
      ? 'lost data in a statement that ran outside the transaction: it could not be rolled back, so the upgrade stopped there'
      : 'would lose data, so it was rolled back and the tenant is as before';
    return new FlotillaError('FLO_DATA_LOSS', `Tenant ${tenant}: the upgrade ${what}:\n  ${refused.map(describeLoss).join('\n  ')}`, {
      hint: committed
        ? "Restore the tenant from the backup taken before the upgrade (among the tenant's backups), then fix the migration."
        : 'If this loss is intended, put -- flotilla:allow <CODE> reason="why" (the code shown) next to the statement that causes it; otherwise fix the migration.',
      meta: {
        tenant,
        committed,
        losses: refused.map((l) => ({ code: l.code, table: l.table, column: l.column ?? null, before: l.before, after: l.after, replaced: l.replaced ?? 0 })),
      },
    });
  }

  private overwriteError(overwrites: readonly Overwrite[], committed: boolean): FlotillaError {
    const tenant = this.options.tenant;
    return new FlotillaError(
      'FLO_DATA_LOSS',
      `Tenant ${tenant}: the upgrade overwrote existing values, which verify.values "refuse" does not accept without an allow${committed ? ' (outside the transaction: not rolled back)' : '; it was rolled back'}:\n  ${overwrites.map(describeOverwrite).join('\n  ')} (FV705)`,
      {
        hint: 'If overwriting these values is intended, put -- flotilla:allow FV705 reason="why" next to the statement that does it.',
        meta: { tenant, committed, overwrites: overwrites.map((o) => ({ code: 'FV705', table: o.table, columns: o.columns.join(', '), rows: o.rows })) },
      },
    );
  }
}
