import type { FlotillaConfig } from '../config/config.js';
import type { MigrationSet } from '../core/migration-set.js';
import { derivedName } from '../core/slug.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import type { MigrationTarget } from '../engine/migrate-target.js';
import { TENANT_ROLE_PREFIX } from '../postgres/tenant-role.js';
import type { Server, Tenant, TenantKind } from '../core/tenant.js';

/** Where a new tenant lives: its own database (`public` schema), or its own schema in the shared database. */
export function placeTenant(slug: string, kind: TenantKind, config: FlotillaConfig['tenants']): { database: string; schema: string } {
  return kind === 'database'
    ? { database: derivedName(config.databasePrefix, slug), schema: 'public' }
    : { database: config.schemaDatabase, schema: derivedName(config.schemaPrefix, slug) };
}

export function migrationTarget(tenant: Tenant, server: Server, set: MigrationSet): MigrationTarget {
  return {
    tenant: tenant.slug,
    serverUrl: server.url,
    database: tenant.database,
    schema: tenant.schema,
    ...(tenant.kind === 'schema' ? { schemaMap: tenantSchemaMap(tenant.schema, set.createdSchemas), role: tenantRole(tenant) } : {}),
  };
}

/** A schema tenant's own role, named by its id (roles are shared by every database of the server). */
export function tenantRole(tenant: Pick<Tenant, 'id'>): string {
  return `${TENANT_ROLE_PREFIX}${tenant.id.replaceAll('-', '')}`;
}

/** Every schema a schema tenant owns: its own and one per schema its migrations create. */
export function ownedSchemas(tenant: Tenant, set: MigrationSet): string[] {
  return tenant.kind === 'schema' ? [...new Set(tenantSchemaMap(tenant.schema, set.createdSchemas).values())] : [];
}

/** Tenants grouped by the database they live in (server and database): what one connection can read at once. */
export function byDatabase(tenants: readonly Tenant[]): Tenant[][] {
  const groups = new Map<string, Tenant[]>();
  for (const tenant of tenants) {
    const key = `${tenant.server}\u0000${tenant.database}`;
    const group = groups.get(key);
    if (group) group.push(tenant);
    else groups.set(key, [tenant]);
  }
  return [...groups.values()];
}
