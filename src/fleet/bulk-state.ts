import { createHash } from 'node:crypto';
import type { MigrationSet } from '../core/migration-set.js';
import { forEachConcurrently } from '../core/concurrently.js';
import { compareVersions } from '../core/migration-file.js';
import { historyDigests, schemasWithHistory } from '../postgres/bulk-history.js';
import { connect } from '../postgres/connect.js';
import type { Server, Tenant } from '../core/tenant.js';
import { byDatabase } from '../tenancy/placement.js';

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

/**
 * Reads where every tenant is with one connection per tenant database and, for
 * schema tenants sharing a database, one catalog query for all of them (in
 * chunks), instead of one connection per tenant.
 */
export async function tenantVersions(
  tenants: readonly Tenant[],
  servers: ReadonlyMap<string, Server>,
  set: MigrationSet,
  target: string | null,
): Promise<Map<string, TenantVersion>> {
  const expected = targetDigest(set, target);
  const result = new Map<string, TenantVersion>();
  const work = byDatabase(tenants);
  await forEachConcurrently(work, 8, async (group) => {
    const first = group[0]!;
    const client = await connect(servers.get(first.server)!.url, first.database, 'flotilla rollout').catch(() => undefined);
    if (!client) {
      for (const t of group) result.set(t.slug, { version: null, atTarget: false });
      return;
    }
    try {
      const present = await schemasWithHistory(
        client,
        group.map((t) => t.schema),
      );
      const rows = await historyDigests(client, present);
      const digests = new Map(rows.map((r) => [r.schema, r]));
      for (const t of group) {
        const found = digests.get(t.schema);
        result.set(t.slug, { version: found?.version ?? null, atTarget: found?.digest === expected });
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return result;
}
