import type { StorageClaim } from '../registry/storage.js';
import type { OwnedStorage } from './owned-storage.js';

/**
 * A restore puts a tenant's current storage aside (each under an `aside` claim
 * naming what it held) before the restored copy takes its names. These two
 * functions end such a swap either way; the restore calls them, and so does the
 * recovery of a restore that was killed, so both follow one rule.
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
  const present = await Promise.all(asides.map((aside) => storage.exists(aside)));
  if (present.some(Boolean)) {
    for (const [i, aside] of asides.entries()) {
      const original = { ...aside, name: aside.asideOf! };
      await storage.removeObject(original);
      if (present[i]) await storage.renameObject(aside, aside.asideOf!);
    }
  }
  await storage.claims.release(asides.map((a) => a.id));
}
