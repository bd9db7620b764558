import type { ErrorCode, FlotillaError } from './errors.js';
import type { TargetResult } from './target.js';
import type { Tenant, TenantKind } from './tenant.js';

// The inputs and results of the library's calls: what the services take and return, and the edges render.

export interface CreateTenantInput {
  readonly slug: string;
  readonly name?: string;
  readonly kind?: TenantKind;
  readonly server?: string;
  readonly plan?: string;
  readonly settings?: Record<string, unknown>;
  /** Labels a rollout can select by (`migrate --tag`). */
  readonly tags?: readonly string[];
}

export interface MigrateOptions {
  /** Slugs to migrate; with neither this nor `all`, nothing is selected. */
  readonly tenants?: readonly string[];
  /** Every active tenant. */
  readonly all?: boolean;
  readonly dryRun?: boolean;
  readonly allowOutOfOrder?: boolean;
  /** Stop at this version (default: the newest migration). */
  readonly target?: string;
  /** Called as each tenant finishes, for live output. */
  readonly onTenant?: (outcome: TenantOutcome) => void;
}

/** Why a backup was (or, in a dry run, would be) taken before a tenant's upgrade. */
export interface BackupDecision {
  readonly reasons: readonly string[];
  /** The backup taken; null in a dry run. */
  readonly id: string | null;
}

export type TenantOutcome =
  | ({ readonly status: 'succeeded' | 'skipped' | 'planned'; readonly backup: BackupDecision | null } & TargetResult)
  | { readonly tenant: string; readonly status: 'failed'; readonly error: FlotillaError; readonly durationMs: number }
  | { readonly tenant: string; readonly status: 'skipped'; readonly reason: string; readonly durationMs: number };

export interface MigrateReport {
  readonly runId: string;
  readonly outcomes: readonly TenantOutcome[];
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

export interface RolloutSelection {
  readonly tenants?: readonly string[];
  readonly all?: boolean;
  readonly tags?: readonly string[];
  readonly servers?: readonly string[];
  /** Tenant statuses to include (default: active). */
  readonly statuses?: readonly Tenant['status'][];
}

export interface RolloutStartOptions {
  /** Stop at this version (default: the newest migration). */
  readonly target?: string;
  /** `3`, `5%` or `acme,globex`: upgraded first; the rest waits until they all succeeded. */
  readonly canary?: string;
  /** A command that receives the canary slugs and must exit 0 before the rest starts. */
  readonly canaryCheck?: string;
  readonly waveSize?: number;
  /** Tenants upgraded at once, across every runner of the rollout (default 4). */
  readonly concurrency?: number;
  /** `2` or `5%`: once more tenants than this failed, no new tenant starts. */
  readonly maxFailures?: string;
  /** slug, plan, created, or size (smallest first). */
  readonly order?: 'slug' | 'plan' | 'created' | 'size';
}

export interface StatusProblem {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface TenantState {
  readonly slug: string;
  readonly kind: TenantKind;
  readonly status: Tenant['status'];
  readonly server: string;
  readonly database: string;
  readonly schema: string;
  readonly version: string | null;
  readonly applied: number;
  readonly pending: number;
  readonly problems: readonly StatusProblem[];
}
