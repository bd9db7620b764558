import { isFlotillaError } from '../core/errors.js';
import type { Operation } from '../control/operations.js';
import type { Registry } from '../control/registry.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import { finishSwap, undoSwap } from '../tenancy/swap.js';
import { removeTenantStorage } from '../tenancy/tenant-storage.js';

/**
 * Finishes or undoes one operation whose process died, from what the registry
 * recorded and what the catalog shows: a restore's swap is finished when its
 * copy was verified and undone otherwise; its scratch storage is removed; a
 * tenant it was still provisioning is removed with what it made; a status it
 * changed is put back. Returns what it did, for the audit trail.
 */
export async function recoverOperation(operation: Operation, deps: { registry: Registry; storage: OwnedStorage }): Promise<string> {
  const { registry, storage } = deps;
  const done: string[] = [];
  const claims = await registry.storage.ofOperation(operation.id);
  const asides = claims.filter((c) => c.purpose === 'aside');
  if (asides.length > 0) {
    const verified = operation.phase === 'verified';
    if (verified) await finishSwap(storage, asides);
    else await undoSwap(storage, asides);
    done.push(verified ? 'restored copy kept' : 'tenant put back as it was');
  }
  const scratch = claims.filter((c) => c.purpose === 'scratch');
  for (const claim of scratch) await storage.drop(claim);
  if (scratch.length > 0) done.push(`${scratch.length} scratch object${scratch.length > 1 ? 's' : ''} removed`);
  for (const tenant of await registry.provisioningBy(operation.id)) {
    await removeTenantStorage(tenant, storage);
    await registry.deleteUnfinishedTenant(tenant);
    done.push(`unfinished tenant ${tenant.slug} removed`);
  }
  const statusTenant = operation.statusTenant ?? operation.tenant;
  if (statusTenant && operation.previousStatus) {
    const tenant = await registry.findTenant(statusTenant).catch((error: unknown) => {
      if (isFlotillaError(error)) return undefined;
      throw error;
    });
    if (tenant?.status === 'restoring' || tenant?.status === 'upgrading') {
      await registry.setStatus(tenant.slug, operation.previousStatus as never);
      done.push(`tenant ${tenant.slug} back to ${operation.previousStatus}`);
    }
  }
  return done.length > 0 ? done.join('; ') : 'nothing left to clear';
}
