import { withClient } from '../postgres/connect.js';
import { adminDatabase } from '../postgres/server-url.js';
import type { Server, Tenant } from '../registry/types.js';

/**
 * Bytes each tenant holds: its database's size (one query per server), or the
 * total size of its schemas (one query per shared database).
 */
export async function tenantSizes(tenants: readonly Tenant[], servers: ReadonlyMap<string, Server>): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const byServer = new Map<string, Tenant[]>();
  for (const t of tenants) byServer.set(t.server, [...(byServer.get(t.server) ?? []), t]);
  for (const [name, group] of byServer) {
    const server = servers.get(name)!;
    const databases = group.filter((t) => t.kind === 'database');
    if (databases.length > 0) {
      await withClient(server.url, adminDatabase(server.url), async (c) => {
        const { rows } = await c.query<{ datname: string; size: string }>('SELECT datname, pg_database_size(datname) AS size FROM pg_database WHERE datname = ANY($1)', [databases.map((t) => t.database)]);
        const bySize = new Map(rows.map((r) => [r.datname, Number(r.size)]));
        for (const t of databases) sizes.set(t.slug, bySize.get(t.database) ?? 0);
      });
    }
    const shared = new Map<string, Tenant[]>();
    for (const t of group.filter((x) => x.kind === 'schema')) shared.set(t.database, [...(shared.get(t.database) ?? []), t]);
    for (const [database, members] of shared) {
      await withClient(server.url, database, async (c) => {
        const { rows } = await c.query<{ schema: string; size: string }>(
          `SELECT n.nspname AS schema, coalesce(sum(pg_total_relation_size(c.oid)), 0) AS size FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
            WHERE n.nspname = ANY($1) GROUP BY 1`,
          [members.map((t) => t.schema)],
        );
        const bySize = new Map(rows.map((r) => [r.schema, Number(r.size)]));
        for (const t of members) sizes.set(t.slug, bySize.get(t.schema) ?? 0);
      });
    }
  }
  return sizes;
}
