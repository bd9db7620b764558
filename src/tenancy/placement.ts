import type { MigrationSet } from '../core/migration-set.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import { TENANT_ROLE_PREFIX } from '../postgres/tenant-role.js';
import type { Tenant } from '../core/tenant.js';

/** A schema tenant's own role, named by its id (roles are shared by every database of the server). */
export function tenantRole(tenant: Pick<Tenant, 'id'>): string {
  return `${TENANT_ROLE_PREFIX}${tenant.id.replaceAll('-', '')}`;
}

/** Every schema a schema tenant owns: its own and one per schema its migrations create. */
export function ownedSchemas(tenant: Tenant, set: MigrationSet): string[] {
  return [...new Set(tenantSchemaMap(tenant.schema, set.createdSchemas).values())];
}

/** Tenants grouped by the database they live in (server and database): what one connection can read at once. */
export function byDatabase<T extends Pick<Tenant, 'server' | 'database'>>(tenants: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const tenant of tenants) {
    const key = `${tenant.server}\u0000${tenant.database}`;
    const group = groups.get(key);
    if (group) group.push(tenant);
    else groups.set(key, [tenant]);
  }
  return [...groups.values()];
}
