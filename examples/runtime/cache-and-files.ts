import type { Redis } from 'ioredis';
import { flushTenant, tenantCache } from 'flotilla/runtime/cache';
import { tenantStorage } from 'flotilla/runtime/storage';

/**
 * Avatars: the image in the tenant's file area, its size cached in Redis.
 * Call save/size inside a request the runtime resolved, or in runtime.runAs(slug, …).
 */
export function avatars(redis: Redis, root: string) {
  const cache = tenantCache(redis); // one connection for every tenant; keys are tenant:<slug>:…
  const files = tenantStorage(root); // <root>/<slug>/…; "../", "/etc/…" and links out are refused (FLO_PATH_ESCAPE, HTTP 400)
  return {
    async save(user: string, image: Uint8Array): Promise<void> {
      await files.writeFile(`avatars/${user}.png`, image);
      await cache.set(`avatar-size:${user}`, image.byteLength, { ex: 3600 });
    },
    async size(user: string): Promise<number> {
      const cached = await cache.get(`avatar-size:${user}`);
      if (cached !== null) return Number(cached);
      const image = await files.readFile(`avatars/${user}.png`);
      await cache.set(`avatar-size:${user}`, image.byteLength, { ex: 3600 });
      return image.byteLength;
    },
    /** When a tenant leaves: its keys go, every other tenant's stay. */
    forget: (slug: string): Promise<number> => flushTenant(redis, slug),
  };
}
