import { withClient } from '../postgres/connect.js';
import { existingSchemas, putSchemasBack } from '../postgres/provision.js';
import type { StorageClaim } from '../control/storage.js';
import type { OwnedStorage } from './owned-storage.js';

/**
 * A restore puts a tenant's current storage aside (each under an `aside` claim
 * naming what it held) before the restored copy takes its names. These two
 * functions end such a swap either way; the restore calls them, and so does the
 * recovery of a restore that failed or was killed, so both follow one rule.
 * Each can itself be interrupted at any point and run again.
 */

/** The restored copy is verified and in place: the storage put aside goes. */
export async function finishSwap(storage: OwnedStorage, asides: readonly StorageClaim[]): Promise<void> {
  for (const aside of asides) await storage.drop(aside);
}

/**
 * The restored copy is not (or not yet) verified: whatever stands under the
 * tenant's names is removed, and what was put aside goes back. A swap that never
 * moved anything (no aside exists) leaves the tenant's names alone.
 */
export async function undoSwap(storage: OwnedStorage, asides: readonly StorageClaim[]): Promise<void> {
  const schemas = asides.filter((a) => a.kind === 'schema');
  if (schemas.length > 0) await undoSchemaSwap(storage, schemas);
  for (const aside of asides.filter((a) => a.kind === 'database')) {
    // One database: dropping the copy and renaming the original back cannot share a transaction, but killed
    // between the two, the aside is still there and the next run does both again.
    if (await storage.exists(aside)) {
      await storage.removeObject({ ...aside, name: aside.asideOf! });
      await storage.renameObject(aside, aside.asideOf!);
    }
    await storage.claims.release([aside.id]);
  }
}

/**
 * A schema tenant's schemas were moved aside together, in one transaction; they
 * come back together, in one transaction, with the restored ones dropped in it.
 * Killed before it commits, nothing changed; after, nothing is aside any more.
 */
async function undoSchemaSwap(storage: OwnedStorage, asides: readonly StorageClaim[]): Promise<void> {
  const { server, database } = asides[0]!;
  const url = await storage.serverUrl(server);
  await withClient(url, database, async (client) => {
    const present = new Set(
      await existingSchemas(
        client,
        asides.map((a) => a.name),
      ),
    );
    if (present.size === 0) return;
    await putSchemasBack(
      client,
      asides.map((a) => a.asideOf!),
      asides.filter((a) => present.has(a.name)).map((a) => ({ from: a.name, to: a.asideOf! })),
    );
  });
  await storage.claims.release(asides.map((a) => a.id));
}
