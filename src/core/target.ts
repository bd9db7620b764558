import type { Split } from './schedule.js';
import type { Loss, Overwrite } from './verification.js';

/**
 * The unit of an upgrade: one place where migrations are applied and their
 * history kept. Tenants map onto targets (a database tenant and a schema tenant
 * each have one of their own; tenants sharing tables would share one).
 */
export interface MigrationTarget {
  /** The tenant's slug (or another label) for messages. */
  readonly tenant: string;
  readonly serverUrl: string;
  readonly database: string;
  /** Holds the history table; unqualified names land here (`public` for a database tenant). */
  readonly schema: string;
  /** For schema tenants: each schema named by migrations → the tenant's own schema. */
  readonly schemaMap?: ReadonlyMap<string, string>;
  /** Create `schema` if missing (the control plane's own schema); tenants' schemas are made at provisioning. */
  readonly createSchema?: boolean;
  /**
   * A schema tenant's own role (it must exist): the tenant's schemas are given
   * to it, and the migrations run under it, so they cannot reach another tenant.
   */
  readonly role?: string;
}

/** What applying a plan to one target did (or, in a dry run, would do). */
export interface TargetResult {
  readonly tenant: string;
  readonly status: 'succeeded' | 'skipped' | 'planned';
  readonly fromVersion: string | null;
  readonly toVersion: string | null;
  /** Migrations run (or, in a dry run, to run), by id. */
  readonly migrations: readonly string[];
  readonly statements: number;
  /** Statements rewritten for a schema tenant. */
  readonly rewritten: number;
  readonly transactions: number;
  readonly outsideTransaction: number;
  readonly splits: readonly Split[];
  readonly durationMs: number;
  /** In a dry run: the statements that may overwrite existing values, and where (`UPDATE of members at 0004_x.sql:3`). */
  readonly mayOverwrite?: readonly string[];
  /** Tables compared before commit, the losses an allow directive accepted, and the values overwritten. */
  readonly verification: { readonly tables: number; readonly allowedLosses: readonly Loss[]; readonly overwrites: readonly Overwrite[] } | null;
}
