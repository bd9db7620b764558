import { randomUUID } from 'node:crypto';
import { fileChecksum } from '../core/checksum.js';
import { currentDatabaseSize } from '../postgres/sizes.js';
import { endSnapshot, exportSnapshot, sessionsOn } from '../postgres/snapshot.js';
import { access, mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { FlotillaConfig } from '../config/config.js';
import { FlotillaError, isFlotillaError } from '../core/errors.js';
import { newestVersion } from '../core/migration-file.js';
import type { MigrationSet } from '../core/migration-set.js';
import { connect, withClient } from '../postgres/connect.js';
import { historyExists, readHistory } from '../postgres/history.js';
import { requireTool, runTool, serverMajor } from '../postgres/pg-tools.js';
import { existingSchemas } from '../postgres/provision.js';
import { adminDatabase, withDatabase } from '../postgres/server-url.js';
import type { Registry } from '../control/registry.js';
import type { StorageClaim } from '../control/storage.js';
import type { Server, Tenant } from '../core/tenant.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import { localFile } from '../tenancy/owned-storage.js';
import { tenancyModel } from '../tenancy/models.js';
import type { Backup, BackupStrategy } from '../control/backup-catalog.js';
import { countRows } from '../postgres/row-counts.js';

export interface BackupOptions {
  readonly strategy?: BackupStrategy;
  /** `manual`, or `before migrate` for automatic backups. */
  readonly reason: string;
  readonly runId?: string | null;
  /** Keep this many backups of the tenant afterwards (0: all). */
  readonly keep?: number;
}

type BackupConfig = FlotillaConfig['backup'];

/** The operation a backup or prune runs in: its scratch is claimed for it, and it stops once it cannot prove it lives. */
export interface OperationRef {
  readonly id: string;
  assertAlive?(): void;
}

/**
 * Takes tenant backups: `dump` (pg_dump custom format, checksummed) or
 * `snapshot` (CREATE DATABASE … TEMPLATE, database tenants on the same server).
 * Each backup records the exact row counts at the moment it was taken. What a
 * backup writes (a file, a database) is claimed as the operation's scratch while
 * it is made, and becomes the backup's only in the transaction that records it:
 * a backup killed midway leaves nothing that the next command does not remove.
 */
export class BackupService {
  constructor(
    private readonly registry: Registry,
    private readonly storage: OwnedStorage,
    private readonly config: BackupConfig,
  ) {}

  async backup(tenant: Tenant, server: Server, set: MigrationSet | undefined, op: OperationRef, options: BackupOptions): Promise<Backup> {
    const operationId = op.id;
    const strategy = options.strategy ?? this.config.strategy;
    let taken: { backup: Omit<Backup, 'createdAt'>; claim: StorageClaim };
    if (strategy === 'snapshot') {
      try {
        taken = await this.snapshot(tenant, server, operationId, options);
      } catch (error) {
        if (!(isFlotillaError(error) && error.code === 'FLO_SNAPSHOT_UNAVAILABLE' && this.config.fallbackToDump && options.strategy === undefined)) throw error;
        taken = await this.dump(tenant, server, set, operationId, options);
      }
    } else {
      taken = await this.dump(tenant, server, set, operationId, options);
    }
    op.assertAlive?.();
    const backup = await this.registry.inTransaction(async (client) => {
      const recorded = await this.registry.backups.insert(taken.backup, client);
      await this.storage.claims.reassign(taken.claim.id, { purpose: 'backup', tenantId: tenant.id, backupId: recorded.id }, client);
      return recorded;
    });
    const keep = options.keep ?? this.config.keep;
    if (keep > 0) await this.prune(tenant.slug, keep, op);
    return backup;
  }

  /**
   * Removes a tenant's backups beyond the newest `keep`. Each one leaves the
   * catalog and becomes this operation's scratch in one transaction, then its
   * file or database goes: killed in between, the next command removes it.
   * Storage the registry does not record as a backup's is never removed.
   */
  async prune(slug: string, keep: number, op: OperationRef): Promise<Backup[]> {
    const operationId = op.id;
    const removed: Backup[] = [];
    for (const backup of (await this.registry.backups.list(slug)).slice(keep)) {
      // A dump this machine cannot see (written elsewhere, on a disk not shared with this one) stays
      // recorded: removing its record would lose track of a file that still exists there.
      const claim = await this.storage.claims.ofBackup(backup.id);
      const elsewhere = claim?.kind === 'file' && claim.server !== '' && claim.server !== localFile('').server;
      if (elsewhere && !(await exists(claim.name))) continue;
      removed.push(backup);
    }
    for (const backup of removed) {
      op.assertAlive?.();
      const claim = await this.registry.inTransaction(async (client) => {
        const owned = await this.storage.claims.ofBackup(backup.id);
        if (owned) await this.storage.claims.reassign(owned.id, { purpose: 'scratch', operationId }, client);
        await this.registry.backups.delete(backup.id, client);
        return owned;
      });
      if (claim) await this.storage.drop({ ...claim, purpose: 'scratch', operationId });
    }
    return removed;
  }

  private async snapshot(tenant: Tenant, server: Server, operationId: string, options: BackupOptions): Promise<{ backup: Omit<Backup, 'createdAt'>; claim: StorageClaim }> {
    if (!tenancyModel(tenant.kind).snapshots) {
      throw new FlotillaError(
        'FLO_SNAPSHOT_UNAVAILABLE',
        `Tenant ${tenant.slug} is a schema tenant: a snapshot copies a whole database, so it can only back up database tenants.`,
        {
          hint: 'Use the dump strategy (or backup.fallbackToDump: true, the default, to fall back automatically).',
          meta: { tenant: tenant.slug },
        },
      );
    }
    const id = randomUUID();
    const name = `flotilla_snap_${id.replaceAll('-', '')}`;
    await withClient(server.url, adminDatabase(server.url), async (admin) => {
      // PostgreSQL waits 5 s for sessions to leave before it refuses: ask first, and fail within a second
      // (long enough for a session that was just closed, such as the upgrade's own, to be gone).
      let busy = await sessionsOn(admin, tenant.database);
      for (let i = 0; busy && i < 10; i++) {
        await sleep(100);
        busy = await sessionsOn(admin, tenant.database);
      }
      if (busy) throw snapshotUnavailable(tenant, busy);
    });
    let claim: StorageClaim;
    try {
      claim = await this.storage.createDatabase({ server: server.name, kind: 'database', name }, { purpose: 'scratch', operationId }, tenant.database);
    } catch (cause) {
      if ((cause as { code?: string }).code !== '55006') throw cause;
      const sessions = await withClient(server.url, adminDatabase(server.url), (admin) => sessionsOn(admin, tenant.database));
      throw snapshotUnavailable(tenant, sessions ?? { n: 'some', apps: 'unknown' }, cause);
    }
    try {
      const { counts, version, size } = await withClient(server.url, name, async (client) => ({
        counts: await countRows(client, {}),
        version: await schemaVersion(client, 'public'),
        size: await currentDatabaseSize(client),
      }));
      const backup = {
        id,
        tenant: tenant.slug,
        kind: tenant.kind,
        server: server.name,
        strategy: 'snapshot' as const,
        location: name,
        sizeBytes: size,
        checksum: null,
        schemaVersion: version,
        rowCounts: counts,
        reason: options.reason,
        runId: options.runId ?? null,
      };
      return { backup, claim };
    } catch (error) {
      await this.storage.drop(claim).catch(() => undefined);
      throw error;
    }
  }

  private async dump(
    tenant: Tenant,
    server: Server,
    set: MigrationSet | undefined,
    operationId: string,
    options: BackupOptions,
  ): Promise<{ backup: Omit<Backup, 'createdAt'>; claim: StorageClaim }> {
    const id = randomUUID();
    const scope = await tenancyModel(tenant.kind).backupScope(tenant, server, set, this.storage);
    const dir = join(this.config.dir, tenant.slug);
    const file = join(
      dir,
      `${new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}_${id.slice(0, 8)}.dump`,
    );
    const partial = `${file}.partial`;
    const claim = await this.storage.claims.claim(localFile(file), { purpose: 'scratch', operationId });
    const client = await connect(server.url, tenant.database, 'flotilla backup');
    try {
      requireTool('pg_dump', await serverMajor(client));
      await mkdir(dir, { recursive: true });
      // Count rows in the very snapshot pg_dump will dump, so the two always agree.
      const snapshot = await exportSnapshot(client);
      const schemas = scope.schemas ? await existingSchemas(client, scope.schemas) : undefined;
      const counts = await countRows(client, { schemas, tenantSchema: scope.tenantSchema });
      const version = await schemaVersion(client, tenant.schema);
      const args = ['--format=custom', `--snapshot=${snapshot}`, '--file', partial, ...(schemas ?? []).flatMap((s) => ['--schema', `"${s}"`])];
      const run = await runTool('pg_dump', args, withDatabase(server.url, tenant.database));
      if (run.code !== 0) {
        throw new FlotillaError('FLO_BACKUP_FAILED', `pg_dump of tenant ${tenant.slug} failed: ${run.stderr.trim()}`, {
          hint: 'Check the message above (disk space, permissions on backup.dir, the server); nothing was recorded.',
          meta: { tenant: tenant.slug },
        });
      }
      await endSnapshot(client);
      await rename(partial, file);
      const { size } = await stat(file);
      const backup = {
        id,
        tenant: tenant.slug,
        kind: tenant.kind,
        server: server.name,
        strategy: 'dump' as const,
        location: file,
        sizeBytes: size,
        checksum: await fileChecksum(file),
        schemaVersion: version,
        rowCounts: counts,
        reason: options.reason,
        runId: options.runId ?? null,
        schemas: schemas ?? null,
      };
      return { backup, claim };
    } catch (error) {
      await this.storage.drop(claim).catch(() => undefined);
      throw error;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

export async function schemaVersion(client: pg.Client, schema: string): Promise<string | null> {
  if (!(await historyExists(client, schema))) return null;
  return newestVersion(await readHistory(client, schema));
}

function snapshotUnavailable(tenant: Tenant, sessions: { n: number | string; apps: string }, cause?: unknown): FlotillaError {
  return new FlotillaError(
    'FLO_SNAPSHOT_UNAVAILABLE',
    `Cannot snapshot tenant ${tenant.slug}: ${sessions.n} session(s) are connected to its database (${sessions.apps}), and PostgreSQL copies a database only when nobody is connected.`,
    {
      hint: 'Stop the application for this tenant (or take the tenant offline), or use the dump strategy, which works while the application runs.',
      meta: { tenant: tenant.slug },
      ...(cause ? { cause } : {}),
    },
  );
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
