import { derivedName } from '../core/slug.js';
import { databaseSizes } from '../postgres/sizes.js';
import { replaceDatabase } from './database-restore.js';
import type { TenancyModel } from './model.js';
import { materialize } from './restore-steps.js';
import { removeTenantStorage } from './tenant-storage.js';

/** A database per tenant: its tables in the `public` schema of a database of its own. */
export const databaseModel: TenancyModel = {
  kind: 'database',
  sharesDatabase: false,
  snapshots: true,
  place: (slug, config) => ({ database: derivedName(config.databasePrefix, slug), schema: 'public' }),
  target: (tenant, server) => ({ tenant: tenant.slug, serverUrl: server.url, database: tenant.database, schema: tenant.schema }),
  provision: async (tenant, _server, _set, storage) => {
    await storage.createDatabase({ server: tenant.server, kind: 'database', name: tenant.database }, { purpose: 'tenant', tenantId: tenant.id });
  },
  remove: removeTenantStorage,
  // Its migrations can only make what lives in its own database: nothing to claim first.
  prepareUpgrade: async () => undefined,
  // A connection of its own: its database has no other tenant to share a pool with.
  session: () => undefined,
  backupScope: async () => ({}),
  backupSchemas: async () => [],
  sizes: async (tenants, servers) => {
    const sizes = new Map<string, number>();
    for (const name of new Set(tenants.map((t) => t.server))) {
      const onServer = tenants.filter((t) => t.server === name);
      const bySize = await databaseSizes(
        servers.get(name)!.url,
        onServer.map((t) => t.database),
      );
      for (const t of onServer) sizes.set(t.slug, bySize.get(t.database) ?? 0);
    }
    return sizes;
  },
  restoreInPlace: (deps, op, { backup, tenant, server }) => replaceDatabase(deps, op, backup, tenant, server),
  restoreAs: async (deps, _op, _set, { backup, server, tenant }) => {
    await materialize(deps, backup, server, tenant.database, { purpose: 'tenant', tenantId: tenant.id });
  },
};
