import type { Backup, BackupStrategy } from '../control/backup-catalog.js';
import { assertSlug, assertSlugReference } from '../core/slug.js';
import type { Tenant } from '../core/tenant.js';
import type { ServiceContext } from './context.js';
import { restoreBackup } from './restore.js';

/** Backups on demand, their catalog, pruning, and restores. */
export class BackupsService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Backs a tenant up now, recorded in the catalog and the audit trail. */
  async create(slug: string, options: { strategy?: BackupStrategy; keep?: number } = {}): Promise<Backup> {
    assertSlugReference(slug);
    const { registry, operations } = this.ctx;
    return operations.run({ command: 'backup', arguments: { slug, ...options }, tenant: slug }, async (op) => {
      const tenant = await registry.getTenant(slug);
      const server = await registry.getServer(tenant.server);
      // A backup must work even while the migrations directory is broken: then it takes what the registry records.
      const set = await this.ctx.migrations.current().catch(() => undefined);
      const backup = await this.ctx.backups.backup(tenant, server, set, op, { ...options, reason: 'manual' });
      return { result: backup, record: { versionBefore: backup.schemaVersion, versionAfter: backup.schemaVersion, backupId: backup.id } };
    });
  }

  list(slug?: string): Promise<Backup[]> {
    if (slug !== undefined) assertSlugReference(slug);
    return this.ctx.registry.backups.list(slug);
  }

  /** Removes a tenant's backups beyond the newest `keep`: their files and snapshot databases, and their catalog rows. */
  async prune(slug: string, keep: number): Promise<Backup[]> {
    assertSlugReference(slug);
    return this.ctx.operations.run({ command: 'backup prune', arguments: { slug, keep }, tenant: slug }, async (op) => {
      await this.ctx.registry.getTenant(slug);
      const removed = await this.ctx.backups.prune(slug, keep, op);
      return { result: removed, record: { details: { removed: removed.map((b) => b.id) } } };
    });
  }

  /** Restores a backup into its tenant (offline meanwhile), or into a new tenant with `as`. */
  async restore(slug: string, backupId: string, options: { as?: string } = {}): Promise<{ backup: Backup; tenant: Tenant }> {
    assertSlugReference(slug);
    if (options.as !== undefined) assertSlug(options.as);
    const { registry, storage, config, operations } = this.ctx;
    // Only a schema tenant restored under another slug needs the migrations (the schemas they create).
    const set = await this.ctx.migrations.current().catch(() => undefined);
    return operations.run({ command: 'restore', arguments: { slug, backup: backupId, as: options.as }, tenant: options.as ?? slug }, async (op) => {
      const result = await restoreBackup({ registry, storage, config }, op, set, { backupId, slug, as: options.as });
      return { result, record: { versionAfter: result.backup.schemaVersion, backupId: result.backup.id } };
    });
  }
}
