import { forEachConcurrently } from '../core/concurrently.js';
import { newestVersion } from '../core/migration-file.js';
import type { StatusProblem, TenantState } from '../core/outcomes.js';
import { plan } from '../core/plan.js';
import type { TenantPlacement } from '../core/tenant.js';
import { lockHolders } from '../postgres/advisory-lock.js';
import { readHistories } from '../postgres/bulk-history.js';
import { connect } from '../postgres/connect.js';
import { byDatabase } from '../tenancy/placement.js';
import type { ServiceContext } from './context.js';

/** Where every tenant stands: its version, what is pending, and what is wrong. */
export class StatusService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Every tenant with its version, pending count and problems; one connection per database, a few queries for all its tenants. */
  async fleet(): Promise<TenantState[]> {
    const { registry, config } = this.ctx;
    const set = await this.ctx.migrations.current();
    const tenants = await registry.tenantPlacements();
    const servers = new Map((await registry.listServers()).map((s) => [s.name, s]));
    const states = new Map<string, TenantState>();
    const work = byDatabase(tenants);
    // Databases are read side by side (a few sessions at once): thousands of tenants over several databases in one pass.
    await forEachConcurrently(work, 4, async (group) => {
      const first = group[0]!;
      const client = await connect(servers.get(first.server)!.url, first.database, 'flotilla status').catch((error: Error) => error);
      if (client instanceof Error) {
        const problem = { code: 'FLO_CONNECTION_FAILED' as const, message: client.message };
        for (const tenant of group) states.set(tenant.slug, baseState(tenant, { problems: [problem] }));
        return;
      }
      try {
        // Bulk: every schema's history and every lock holder of this database in a few queries.
        const schemas = group.map((t) => t.schema);
        const histories = await readHistories(client, schemas);
        const holders = await lockHolders(client, schemas);
        for (const tenant of group) {
          const applied = histories.get(tenant.schema) ?? [];
          const result = plan(set.migrations, applied, { allowOutOfOrder: config.engine.allowOutOfOrder });
          const problems: StatusProblem[] = result.ok ? [] : result.problems.map((p) => ({ code: p.code, message: p.message }));
          const holder = holders.get(tenant.schema);
          if (holder) problems.push({ code: 'FLO_TENANT_LOCKED', message: `locked by session ${holder.pid} (${holder.application})` });
          let pending = result.ok ? result.plan.steps.length : 0;
          if (!result.ok) {
            // The plan is refused, but the count still says what is not applied (or only partly).
            const complete = new Set(applied.filter((a) => a.remaining.length === 0).map((a) => `${a.version}_${a.name}`));
            pending = set.migrations.filter((m) => !complete.has(m.id)).length;
          }
          states.set(tenant.slug, baseState(tenant, { version: newestVersion(applied), applied: applied.length, pending, problems }));
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    });
    return tenants.map((t) => states.get(t.slug)!);
  }
}

function baseState(tenant: TenantPlacement, extra: Partial<TenantState>): TenantState {
  const { slug, kind, status, server, database, schema } = tenant;
  return { slug, kind, status, server, database, schema, version: null, applied: 0, pending: 0, problems: [], ...extra };
}
