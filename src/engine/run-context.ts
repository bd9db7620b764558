import type pg from 'pg';
import type { ParsedMigration } from '../core/migration.js';
import type { Plan } from '../core/plan.js';
import type { HistoryUpdate, Phase } from '../core/schedule.js';
import type { MigrationTarget } from '../core/target.js';
import type { TenantRunner } from '../postgres/tenant-role.js';
import type { Verifier } from './verifier.js';

/** What the phases of one target's upgrade share. */
export interface RunContext {
  readonly client: pg.ClientBase;
  readonly target: MigrationTarget;
  readonly runId: string;
  readonly appliedBy: string;
  readonly resumed: ReadonlySet<string>;
  readonly plan: Plan<ParsedMigration>;
  readonly verifier: Verifier | undefined;
  readonly lastTransaction: Phase | undefined;
  /** The session's search_path is the tenant's (set once, for the statements outside transactions). */
  sessionSearchPath: boolean;
  /** History of statements outside the transaction that ran but is not written yet, by migration; their durations. */
  readonly unrecorded: Map<ParsedMigration, HistoryUpdate>;
  readonly durations: Map<string, number>;
  /** A schema tenant's statements run through this, as its role. */
  runner?: TenantRunner | undefined;
  /** Flotilla's own queries between the tenant's statements (pg_catalog alone on the path, for a schema tenant). */
  readonly guard: <T>(work: () => Promise<T>) => Promise<T>;
}

/** The tenant's schemas, for verification (null: every schema of a database tenant's database). */
export function tenantSchemas(target: MigrationTarget): readonly string[] | null {
  return target.schemaMap ? [...new Set([target.schema, ...target.schemaMap.values()])] : null;
}
