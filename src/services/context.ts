import type { ResolvedConfig } from '../config/config.js';
import type { Registry } from '../control/registry.js';
import type { EngineOptions } from '../engine/migrate-target.js';
import type { SessionPools } from '../postgres/session-pools.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import type { BackupService } from './backup-service.js';
import type { MigrationSource } from './migration-source.js';
import type { Operations } from './operations.js';
import type { RunnerSession } from './runner-session.js';

/** What every service works over: one per open Flotilla, with the actor its calls are recorded under. */
export interface ServiceContext {
  readonly config: ResolvedConfig;
  readonly registry: Registry;
  /** Every database, schema and file Flotilla makes or removes goes through here, under the registry's claims. */
  readonly storage: OwnedStorage;
  /** Pooled sessions for tenants that share a database. */
  readonly sessions: SessionPools;
  /** The one audit wrapper every mutating call goes through. */
  readonly operations: Operations;
  /** Who acts: the OS user for the CLI (the API will pass its token's name); recorded on the audit trail and in tenants' histories. */
  readonly actor: string;
  readonly migrations: MigrationSource;
  readonly runner: RunnerSession;
  readonly backups: BackupService;
}

/** The engine's options from the configuration, with the actor as the history's `applied_by`. */
export function engineOptions(ctx: ServiceContext): EngineOptions {
  const { lockWaitMs, lockTimeout, statementTimeout } = ctx.config.engine;
  return { lockWaitMs, lockTimeout, statementTimeout, verify: ctx.config.verify, appliedBy: ctx.actor };
}
