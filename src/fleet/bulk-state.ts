import { createHash } from 'node:crypto';
import type { MigrationSet } from '../core/migration-set.js';
import { compareVersions } from '../core/migration-file.js';
import { quoteIdent } from '../core/sql/quote.js';
import { connect } from '../postgres/connect.js';
import type { Server, Tenant } from '../registry/types.js';

export interface TenantVersion {
  /** Newest applied version; null when none (or the tenant's database cannot be read). */
  readonly version: string | null;
  /** Its history holds exactly the target's migrations, all finished. */
  readonly atTarget: boolean;
}

/** The digest a history must have to be at the target: every migration up to it, in order, finished. */
export function targetDigest(set: MigrationSet, target: string | null): string {
  const lines = set.migrations.filter((m) => target === null || compareVersions(m.version, target) <= 0).map((m) => `${m.version} ${m.name} ${m.checksum}`);
  return createHash('md5').update(lines.join(',')).digest('hex');
}

const CHUNK = 400;

/**
 * Reads where every tenant is with one connection per tenant database and, for
 * schema tenants sharing a database, one catalog query for all of them (in
 * chunks), instead of one connection per tenant.
 */
export async function tenantVersions(tenants: readonly Tenant[], servers: ReadonlyMap<string, Server>, set: MigrationSet, target: string | null): Promise<Map<string, TenantVersion>> {
  const expected = targetDigest(set, target);
  const groups = new Map<string, Tenant[]>();
  for (const tenant of tenants) {
    const key = `${tenant.server}\u0000${tenant.database}`;
    groups.set(key, [...(groups.get(key) ?? []), tenant]);
  }
  const result = new Map<string, TenantVersion>();
  const work = [...groups.values()];
  const worker = async () => {
    for (let group = work.shift(); group; group = work.shift()) {
      const first = group[0]!;
      const client = await connect(servers.get(first.server)!.url, first.database, 'flotilla rollout').catch(() => undefined);
      if (!client) {
        for (const t of group) result.set(t.slug, { version: null, atTarget: false });
        continue;
      }
      try {
        const { rows: present } = await client.query<{ nspname: string }>(
          `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'flotilla_migrations' AND n.nspname = ANY($1)`,
          [group.map((t) => t.schema)],
        );
        const digests = new Map<string, { version: string | null; digest: string }>();
        const schemas = present.map((r) => r.nspname);
        for (let i = 0; i < schemas.length; i += CHUNK) {
          const chunk = schemas.slice(i, i + CHUNK);
          const query = chunk
            .map(
              (schema, k) => `SELECT $${k + 1}::text AS schema, (SELECT version FROM ${quoteIdent(schema)}.flotilla_migrations ORDER BY version::numeric DESC LIMIT 1) AS version,
                md5(coalesce(string_agg(version || ' ' || name || ' ' || checksum, ',' ORDER BY version::numeric, name COLLATE "C") FILTER (WHERE remaining = '{}'), '')
                    || CASE WHEN bool_or(remaining <> '{}') THEN ' unfinished' ELSE '' END) AS digest
                FROM ${quoteIdent(schema)}.flotilla_migrations`,
            )
            .join('\nUNION ALL\n');
          for (const row of (await client.query<{ schema: string; version: string | null; digest: string }>(query, chunk)).rows) digests.set(row.schema, row);
        }
        for (const t of group) {
          const found = digests.get(t.schema);
          result.set(t.slug, { version: found?.version ?? null, atTarget: found?.digest === expected });
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return result;
}
