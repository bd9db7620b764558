import type { FlotillaConfig } from '../config/config.js';
import type { Backup } from '../control/backup-catalog.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import type { MigrationTarget } from '../core/target.js';
import type { Server, Tenant, TenantKind } from '../core/tenant.js';
import type { SessionPools, SessionSource } from '../postgres/session-pools.js';
import type { OwnedStorage } from './owned-storage.js';
import type { RestoreDeps } from './restore-steps.js';

/** What the registry already records a tenant owns (read in bulk for many tenants by the caller). */
export interface KnownStorage {
  readonly schemas?: readonly string[];
  readonly roles?: readonly string[];
}

/** What a backup of a tenant holds and how its rows are counted. */
export interface BackupScope {
  /** The schemas dumped and counted; undefined: the whole database. */
  readonly schemas?: readonly string[];
  /** The tenant's own schema, so counts compare equal under another tenant's names. */
  readonly tenantSchema?: string;
}

/**
 * One way of giving a tenant its data. Every decision that differs between
 * kinds is made here, and nowhere else: where a tenant lives, how it is made and
 * removed, the storage target its upgrades apply to, what it owns, what a
 * backup of it holds and how it is restored. A kind where many tenants share
 * one target (rows in shared tables) is one more implementation.
 */
export interface TenancyModel {
  readonly kind: TenantKind;
  /** Where a new tenant of this kind lives. */
  place(slug: string, config: FlotillaConfig['tenants']): { database: string; schema: string };
  /** The storage target the tenant's migrations are applied to. */
  target(tenant: Tenant, server: Server, set: MigrationSet): MigrationTarget;
  /** Makes the tenant's storage, claimed for it, before its first migration. */
  provision(tenant: Tenant, server: Server, set: MigrationSet, storage: OwnedStorage): Promise<void>;
  /** Removes everything the registry records as the tenant's own. */
  remove(tenant: Tenant, storage: OwnedStorage): Promise<void>;
  /** Claims what an upgrade's migrations will create, and what the tenant needs to run them (its role); a dry run only checks. */
  prepareUpgrade(tenant: Tenant, server: Server, set: MigrationSet, storage: OwnedStorage, options: { known: KnownStorage; checkOnly: boolean }): Promise<void>;
  /** Where an upgrade's session comes from: a pool shared by the tenants of one database, or (undefined) a connection of its own. */
  session(tenant: Tenant, server: Server, pools: SessionPools): SessionSource | undefined;
  /** Tenants of this kind share a database: their migrations are linted for that, and their versions read in bulk. */
  readonly sharesDatabase: boolean;
  /** A snapshot (a copy of a whole database) can back it up. */
  readonly snapshots: boolean;
  /** What a backup of the tenant holds, with what its migrations made claimed first when the set is known. */
  backupScope(tenant: Tenant, server: Server, set: MigrationSet | undefined, storage: OwnedStorage): Promise<BackupScope>;
  /** The schemas a backup of this kind holds (none to name for a whole database). */
  backupSchemas(backup: Backup): Promise<string[]>;
  /** Bytes each tenant holds. */
  sizes(tenants: readonly Tenant[], servers: ReadonlyMap<string, Server>): Promise<Map<string, number>>;
  /** Replaces the tenant's data with the backup's, all or nothing. */
  restoreInPlace(
    deps: RestoreDeps,
    op: OperationContext,
    input: { backup: Backup; tenant: Tenant; server: Server; schemas: readonly string[]; set: MigrationSet | undefined },
  ): Promise<void>;
  /** Makes a new tenant's storage from the backup of another. */
  restoreAs(
    deps: RestoreDeps,
    op: OperationContext,
    set: MigrationSet | undefined,
    input: { backup: Backup; server: Server; tenant: Tenant; schemas: readonly string[] },
  ): Promise<void>;
}
