import type { MigrationSet } from '../core/migration-set.js';
import { withClient } from '../postgres/connect.js';
import { historyExists, readHistory } from '../postgres/history.js';
import { existingSchemas } from '../postgres/provision.js';
import type { Server, Tenant } from '../core/tenant.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import { ownedSchemas, tenantRole } from './placement.js';
import type { OwnedStorage } from './owned-storage.js';
import { notFlotillas } from './owned-storage.js';

/** Removes everything the registry records as the tenant's own (databases, schemas, then its role), then those claims. */
export async function removeTenantStorage(tenant: Tenant, storage: OwnedStorage): Promise<void> {
  const claims = await storage.claims.ofTenant(tenant.id);
  for (const claim of [...claims.filter((c) => c.kind !== 'role'), ...claims.filter((c) => c.kind === 'role')]) await storage.drop(claim);
}

/**
 * A schema tenant's own role, made and claimed when it has none yet (at
 * provisioning, or at the first upgrade of a tenant made before roles existed).
 * `known`: the roles the registry already records for it (read in bulk by the caller).
 */
export async function ensureTenantRole(tenant: Tenant, storage: OwnedStorage, options: { known?: readonly string[]; newSchema?: boolean } = {}): Promise<void> {
  const role = tenantRole(tenant);
  if ((options.known ?? (await storage.claims.ofTenant(tenant.id)).map((c) => c.name)).includes(role)) return;
  // A new tenant's empty schema is the role's at once; an older tenant's schema and what it holds are given to it by its next upgrade.
  await storage.createRole(
    { server: tenant.server, kind: 'role', database: tenant.database, name: role },
    { purpose: 'tenant', tenantId: tenant.id },
    options.newSchema ? { giveSchema: tenant.schema } : {},
  );
}

/**
 * A schema tenant's migrations make schemas of its own (`CREATE SCHEMA events`
 * becomes `<its schema>__events`). Their names are claimed for the tenant before
 * the migration runs; a name under which something else already exists is
 * refused. A schema made by this tenant's own migrations before ownership was
 * recorded (its history holds the migration that creates it) is claimed as it is.
 * `known` is what the registry already records (read in bulk by the caller).
 */
export async function claimTenantSchemas(
  tenant: Tenant,
  server: Server,
  set: MigrationSet,
  storage: OwnedStorage,
  options: { known?: readonly string[]; checkOnly?: boolean } = {},
): Promise<void> {
  const known = new Set(options.known ?? (await storage.claims.ofTenant(tenant.id)).map((c) => c.name));
  const missing = ownedSchemas(tenant, set).filter((name) => !known.has(name));
  if (missing.length === 0) return;
  const { present, made } = await withClient(server.url, tenant.database, async (client) => {
    const present = new Set(await existingSchemas(client, missing));
    const applied =
      present.size > 0 && (await historyExists(client, tenant.schema))
        ? new Set((await readHistory(client, tenant.schema)).map((a) => `${a.version}_${a.name}`))
        : new Set<string>();
    // The schemas this tenant's applied migrations created, under the tenant's names.
    const made = new Set(set.migrations.filter((m) => applied.has(m.id)).flatMap((m) => m.schemasCreated));
    return { present, made };
  });
  const mapOf = new Map([...tenantSchemaMap(tenant.schema, set.createdSchemas)].map(([created, name]) => [name, created]));
  for (const name of missing) {
    const ref = { server: tenant.server, kind: 'schema', database: tenant.database, name } as const;
    const claim = await storage.claims.find(ref);
    if (claim && !(claim.purpose === 'tenant' && claim.tenantId === tenant.id)) await storage.claims.claim(ref, { purpose: 'tenant', tenantId: tenant.id });
    if (present.has(name) && !made.has(mapOf.get(name) ?? '')) throw notFlotillas(ref);
    if (!options.checkOnly) await storage.claims.claim(ref, { purpose: 'tenant', tenantId: tenant.id });
  }
}
