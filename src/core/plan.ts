import type { ErrorCode } from './errors.js';
import { FlotillaError } from './errors.js';
import { compareMigrations, compareVersions } from './migration-file.js';

/** What a plan needs to know of a migration on disk. */
export interface AvailableMigration {
  readonly id: string;
  readonly version: string;
  readonly name: string;
  readonly path: string;
  readonly checksum: string;
  readonly statements: readonly unknown[];
}

/** A row of a tenant's history table. */
export interface AppliedMigration {
  readonly version: string;
  readonly name: string;
  readonly checksum: string;
  /** Statement indexes not yet run (non-transactional statements after a crash); empty when complete. */
  readonly remaining: readonly number[];
}

export interface PlanOptions {
  /** Apply a pending migration older than the newest applied one instead of refusing. */
  readonly allowOutOfOrder?: boolean;
  /** Stop at this version (inclusive); default: the newest on disk. */
  readonly target?: string;
}

export interface PlanStep<M extends AvailableMigration> {
  readonly migration: M;
  /** Statement indexes to run, in order. */
  readonly statements: readonly number[];
  /** True when finishing a migration that was partly applied before. */
  readonly resumed: boolean;
}

export interface Plan<M extends AvailableMigration> {
  readonly currentVersion: string | null;
  readonly targetVersion: string | null;
  readonly appliedCount: number;
  readonly steps: readonly PlanStep<M>[];
}

export type PlanProblemCode = Extract<ErrorCode, 'FLO_CHECKSUM_CHANGED' | 'FLO_MIGRATION_MISSING' | 'FLO_OUT_OF_ORDER'>;

export interface PlanProblem {
  readonly code: PlanProblemCode;
  readonly version: string;
  readonly message: string;
  readonly hint: string;
}

export type PlanResult<M extends AvailableMigration> = { readonly ok: true; readonly plan: Plan<M> } | { readonly ok: false; readonly problems: readonly PlanProblem[] };

/**
 * Decides what to run for one tenant. Pure: compares sets by version and
 * checksum (never "newer than the last timestamp"), and reports every problem.
 */
export function plan<M extends AvailableMigration>(available: readonly M[], applied: readonly AppliedMigration[], options: PlanOptions = {}): PlanResult<M> {
  const byId = new Map(available.map((m) => [m.id, m]));
  const appliedIds = new Set(applied.map((a) => `${a.version}_${a.name}`));
  const problems: PlanProblem[] = [];
  let newestApplied: AppliedMigration | null = null;
  for (const row of applied) {
    if (newestApplied === null || compareMigrations(row, newestApplied) > 0) newestApplied = row;
    const id = `${row.version}_${row.name}`;
    const file = byId.get(id);
    if (!file) {
      problems.push({
        code: 'FLO_MIGRATION_MISSING',
        version: row.version,
        message: `Migration ${id} was applied but is not in the migrations directory.`,
        hint: 'Restore the file from version control; applied migrations must stay on disk so every tenant can be checked against them.',
      });
    } else if (file.checksum !== row.checksum) {
      problems.push({
        code: 'FLO_CHECKSUM_CHANGED',
        version: row.version,
        message: `Migration ${file.path} was changed after it was applied (checksum ${short(row.checksum)} applied, ${short(file.checksum)} on disk).`,
        hint: 'Restore the applied version from version control and put the change in a new migration (`flotilla migration new <name>`).',
      });
    }
  }
  const steps: PlanStep<M>[] = [];
  for (const row of applied) {
    const file = byId.get(`${row.version}_${row.name}`);
    if (file && row.remaining.length > 0) steps.push({ migration: file, statements: row.remaining, resumed: true });
  }
  const target = options.target ?? null;
  for (const m of available) {
    if (appliedIds.has(m.id)) continue;
    if (target !== null && compareVersions(m.version, target) > 0) continue;
    if (newestApplied !== null && compareMigrations(m, newestApplied) < 0 && !options.allowOutOfOrder) {
      problems.push({
        code: 'FLO_OUT_OF_ORDER',
        version: m.version,
        message: `Migration ${m.path} is pending but older than the newest applied migration (${newestApplied.version}_${newestApplied.name}).`,
        hint: 'Give it a version newer than every applied migration (rename the file), or allow out-of-order migrations (engine.allowOutOfOrder) if its order does not matter.',
      });
    }
    steps.push({ migration: m, statements: m.statements.map((_, i) => i), resumed: false });
  }
  if (problems.length > 0) return { ok: false, problems };
  steps.sort((a, b) => compareMigrations(a.migration, b.migration));
  const lastStep = steps[steps.length - 1];
  return {
    ok: true,
    plan: {
      currentVersion: newestApplied?.version ?? null,
      targetVersion: lastStep ? lastStep.migration.version : (newestApplied?.version ?? null),
      appliedCount: applied.length,
      steps,
    },
  };
}

/** The first problem as a typed error, naming how many others there are. */
export function planProblemsToError(problems: readonly PlanProblem[], tenant?: string): FlotillaError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  return new FlotillaError(first.code, `${tenant ? `Tenant ${tenant}: ` : ''}${first.message}${more}`, {
    hint: first.hint,
    meta: { ...(tenant ? { tenant } : {}), problems: problems.map((p) => ({ code: p.code, version: p.version, message: p.message })) },
  });
}

function short(checksum: string): string {
  return checksum.slice(0, 12);
}
