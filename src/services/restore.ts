import { FlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import { assertSlug } from '../core/slug.js';
import type { Backup } from '../control/backup-catalog.js';
import type { Server, Tenant } from '../core/tenant.js';
import { tenancyModel } from '../tenancy/models.js';
import type { RestoreDeps } from '../tenancy/restore-steps.js';
import { verifyBackupIntact } from '../tenancy/restore-steps.js';
import { removeTenantStorage } from '../tenancy/tenant-storage.js';
import { finishedBefore } from './provisioning.js';

export type { RestoreDeps };

/**
 * Restores a backup into its tenant (offline meanwhile) or, with `as`, into a
 * new tenant. The copy is made aside and its row counts must equal the backup's
 * before it replaces anything; only storage the registry records as the
 * tenant's is replaced, and what it held is kept aside until the copy is in place.
 */
export async function restoreBackup(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backupId: string; slug: string; as?: string },
): Promise<{ backup: Backup; tenant: Tenant }> {
  const { registry } = deps;
  const backup = await registry.backups.get(input.backupId);
  if (backup.tenant !== input.slug) {
    throw new FlotillaError('FLO_BACKUP_NOT_FOUND', `Backup ${backup.id.slice(0, 8)} belongs to tenant ${backup.tenant}, not ${input.slug}.`, {
      hint: `List the backups of ${input.slug} for its own, or restore this one as a new tenant (under a new slug).`,
      meta: { backup: backup.id, tenant: input.slug },
    });
  }
  if (input.as !== undefined) assertSlug(input.as);
  const server = await registry.getServer(backup.server);
  await verifyBackupIntact(backup, server);
  const model = tenancyModel(backup.kind);
  const schemas = await model.backupSchemas(backup);
  if (input.as !== undefined) {
    // Run again after it was killed once its work was done: the copy is there, and that is the result.
    const existing = await registry.findTenant(input.as);
    if (existing && (await finishedBefore(registry, 'restore', existing, (args) => args.backup === input.backupId && args.slug === input.slug)))
      return { backup, tenant: existing };
    return { backup, tenant: await restoreAsNew(deps, op, set, { backup, server, schemas, slug: input.as }) };
  }
  const tenant = await registry.getTenant(input.slug);
  // Never under a command that is making, upgrading or restoring it (those that died were cleared before this one).
  // A tenant left `restoring` by an older Flotilla that recorded no operations is restored all the same.
  const leftRestoring = tenant.status === 'restoring' && !(await registry.operations.othersOn(tenant.slug, op.id));
  if (leftRestoring) await registry.setStatus(tenant.slug, 'active');
  // Checked and set in one step: a rollout that claims the tenant meanwhile is seen, not overwritten.
  const { previous, changed } = await op.setTenantStatus(tenant.slug, 'restoring', ['provisioning', 'upgrading', 'restoring']);
  if (!changed) {
    throw new FlotillaError('FLO_TENANT_LOCKED', `Tenant ${tenant.slug} is ${previous} by another command right now: it cannot be restored meanwhile.`, {
      hint: "Wait for that command to finish (the rollouts and the tenant's audit trail show it), then run the restore again.",
      meta: { tenant: tenant.slug, status: previous },
    });
  }
  try {
    await model.restoreInPlace(deps, op, { backup, tenant, server, schemas, set });
  } finally {
    await registry.setStatus(tenant.slug, previous);
  }
  return { backup, tenant: await registry.getTenant(tenant.slug) };
}

/** A new tenant from a backup: registered as provisioning, made from the copy, active once its counts match. */
async function restoreAsNew(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backup: Backup; server: Server; schemas: readonly string[]; slug: string },
): Promise<Tenant> {
  const { registry, storage, config } = deps;
  const { backup, server } = input;
  const model = tenancyModel(backup.kind);
  const place = model.place(input.slug, config.tenants);
  const tenant = await registry.insertTenant({ slug: input.slug, name: input.slug, kind: backup.kind, server: server.name, ...place, operationId: op.id });
  try {
    await model.restoreAs(deps, op, set, { backup, server, tenant, schemas: input.schemas });
    await registry.activate(tenant.slug);
    return await registry.getTenant(tenant.slug);
  } catch (error) {
    // Only a tenant still being made is undone: one activated before the error stays as it is. When even
    // that cannot be read, the operation's recovery (which runs when the command fails) decides.
    if (await registry.stillProvisioning(tenant).catch(() => false)) {
      await removeTenantStorage(tenant, storage).catch(() => undefined);
      await registry.deleteUnfinishedTenant(tenant).catch(() => undefined);
    }
    throw error;
  }
}
