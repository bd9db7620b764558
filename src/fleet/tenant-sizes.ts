import { withClient } from '../postgres/connect.js';
import { adminDatabase } from '../postgres/server-url.js';
import type { Server, Tenant } from '../core/tenant.js';
import { byDatabase } from '../tenancy/placement.js';

/**
 * Bytes each tenant holds: its database's size (one query per server), or the
 * total size of its schemas (one query per shared database).
 */
export async function tenantSizes(tenants: readonly Tenant[], servers: ReadonlyMap<string, Server>): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const databaseTenants = tenants.filter((t) => t.kind === 'database');
  for (const name of new Set(databaseTenants.map((t) => t.server))) {
    const server = servers.get(name)!;
    const onServer = databaseTenants.filter((t) => t.server === name);
    await withClient(server.url, adminDatabase(server.url), async (c) => {
      const { rows } = await c.query<{ datname: string; size: string }>('SELECT datname, pg_database_size(datname) AS size FROM pg_database WHERE datname = ANY($1)', [
        onServer.map((t) => t.database),
      ]);
      const bySize = new Map(rows.map((r) => [r.datname, Number(r.size)]));
      for (const t of onServer) sizes.set(t.slug, bySize.get(t.database) ?? 0);
    });
  }
  for (const members of byDatabase(tenants.filter((t) => t.kind === 'schema'))) {
    const first = members[0]!;
    await withClient(servers.get(first.server)!.url, first.database, async (c) => {
      const { rows } = await c.query<{ schema: string; size: string }>(
        `SELECT n.nspname AS schema, coalesce(sum(pg_total_relation_size(c.oid)), 0) AS size FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
          WHERE n.nspname = ANY($1) GROUP BY 1`,
        [members.map((t) => t.schema)],
      );
      const bySize = new Map(rows.map((r) => [r.schema, Number(r.size)]));
      for (const t of members) sizes.set(t.slug, bySize.get(t.schema) ?? 0);
    });
  }
  return sizes;
}
