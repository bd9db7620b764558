import { derivedName } from '../core/slug.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import { schemaSizes } from '../postgres/sizes.js';
import type { TenancyModel } from './model.js';
import { byDatabase, tenantRole } from './placement.js';
import { backupSchemas } from './restore-steps.js';
import { copySchemasAs, replaceSchemas } from './schema-restore.js';
import { claimTenantSchemas, ensureTenantRole, removeTenantStorage } from './tenant-storage.js';

/**
 * A schema per tenant in a database tenants share: its migrations rewritten
 * to its own schema (and `<schema>__<name>` for schemas they create), run under
 * a role of its own that can reach no other tenant's schemas.
 */
export const schemaModel: TenancyModel = {
  kind: 'schema',
  sharesDatabase: true,
  snapshots: false,
  place: (slug, config) => ({ database: config.schemaDatabase, schema: derivedName(config.schemaPrefix, slug) }),
  target: (tenant, server, set) => ({
    tenant: tenant.slug,
    serverUrl: server.url,
    database: tenant.database,
    schema: tenant.schema,
    schemaMap: tenantSchemaMap(tenant.schema, set.createdSchemas),
    role: tenantRole(tenant),
  }),
  provision: async (tenant, server, set, storage) => {
    await storage.ensureSharedDatabase(tenant.server, tenant.database);
    await storage.createSchema({ server: tenant.server, kind: 'schema', database: tenant.database, name: tenant.schema }, { purpose: 'tenant', tenantId: tenant.id });
    // The schemas its migrations will create are its own from now on (refused if something holds their names).
    await claimTenantSchemas(tenant, server, set, storage);
    // Its own role, under which its migrations run: it can reach no other tenant's schemas.
    await ensureTenantRole(tenant, storage, { newSchema: true });
  },
  remove: removeTenantStorage,
  prepareUpgrade: async (tenant, server, set, storage, { known, checkOnly }) => {
    // A schema tenant made before roles existed gets its own now; its migrations run under it.
    if (!checkOnly) await ensureTenantRole(tenant, storage, { known: known.roles ?? [] });
    // The schemas this upgrade's migrations create become the tenant's before they exist (a dry run only checks).
    await claimTenantSchemas(tenant, server, set, storage, { known: known.schemas ?? [], checkOnly });
  },
  // Thousands of tenants of one database need a handful of connections, not one each.
  session: (tenant, server, pools) => pools.source(server.url, tenant.database, 16),
  backupScope: async (tenant, server, set, storage) => {
    // A schema tenant's dump holds exactly the schemas the registry records as its own.
    if (set) await claimTenantSchemas(tenant, server, set, storage);
    const schemas = (await storage.claims.ofTenant(tenant.id)).filter((c) => c.kind === 'schema').map((c) => c.name);
    return { schemas, tenantSchema: tenant.schema };
  },
  backupSchemas,
  sizes: async (tenants, servers) => {
    const sizes = new Map<string, number>();
    for (const members of byDatabase(tenants)) {
      const first = members[0]!;
      const bySize = await schemaSizes(
        servers.get(first.server)!.url,
        first.database,
        members.map((t) => t.schema),
      );
      for (const t of members) sizes.set(t.slug, bySize.get(t.schema) ?? 0);
    }
    return sizes;
  },
  restoreInPlace: replaceSchemas,
  restoreAs: copySchemasAs,
};
