import { FlotillaError } from '../core/errors.js';
import type { OperationContext } from '../core/operation.js';
import type { Backup } from '../control/backup-catalog.js';
import type { Server, Tenant } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { endSessions } from '../postgres/provision.js';
import { adminDatabase } from '../postgres/server-url.js';
import type { RestoreDeps } from './restore-steps.js';
import { materialize } from './restore-steps.js';
import { finishSwap, undoSwap } from './swap.js';

/** Database tenant: the copy is made in a scratch database, checked, then takes the tenant database's name. */
export async function replaceDatabase(deps: RestoreDeps, op: OperationContext, backup: Backup, tenant: Tenant, server: Server): Promise<void> {
  const { storage } = deps;
  const own = await storage.requireTenants({ server: server.name, kind: 'database', name: tenant.database }, tenant);
  const suffix = op.id.replaceAll('-', '');
  const scratch = await materialize(deps, backup, server, `flotilla_restore_${suffix}`, { purpose: 'scratch', operationId: op.id });
  const aside = await storage.claimAbsent(
    { server: server.name, kind: 'database', name: `flotilla_old_${suffix}` },
    { purpose: 'aside', operationId: op.id, tenantId: tenant.id, asideOf: own.name },
  );
  op.assertAlive();
  try {
    await withClient(server.url, adminDatabase(server.url), (admin) => endSessions(admin, tenant.database));
    await storage.renameObject(own, aside.name);
  } catch (cause) {
    // Someone reconnected in between: nothing moved.
    await storage.claims.release([aside.id]);
    await storage.drop(scratch);
    throw new FlotillaError('FLO_RESTORE_FAILED', `Could not swap the restored copy in: ${(cause as Error).message}`, {
      hint: 'Sessions keep reconnecting to the tenant database: stop the application for this tenant and run the restore again. Nothing was replaced.',
      meta: { backup: backup.id, tenant: tenant.slug },
      cause,
    });
  }
  try {
    await op.setPhase('moved');
    await storage.renameObject(scratch, own.name);
  } catch (error) {
    await undoSwap(storage, [aside]);
    await storage.drop(scratch);
    throw error;
  }
  await storage.claims.release([scratch.id]);
  await op.setPhase('verified');
  await finishSwap(storage, [aside]);
}
