import type pg from 'pg';
import type { CreateTenantInput } from '../core/outcomes.js';
import { assertSlug } from '../core/slug.js';
import type { Tenant } from '../core/tenant.js';
import { MAIN_SERVER } from '../core/tenant.js';
import { withSearchPath } from '../postgres/search-path.js';
import { tenancyModel } from '../tenancy/models.js';
import type { ServiceContext } from './context.js';
import { engineOptions } from './context.js';
import { provisionTenant } from './provisioning.js';

/** Storage the registry records a tenant owns. */
export interface OwnedObject {
  readonly kind: string;
  readonly server: string;
  readonly database: string;
  readonly name: string;
}

/** The tenants: created, listed, read, and reached by applications' own code. */
export class TenantService {
  constructor(private readonly ctx: ServiceContext) {}

  /**
   * Creates the tenant's database or schema, applies every migration and
   * registers it as active. On any failure what was created is removed and the
   * tenant is not registered; if the process is killed, the next command does
   * that, and running the same create again then makes the tenant.
   */
  async create(input: CreateTenantInput): Promise<Tenant> {
    const { config, registry, storage, operations } = this.ctx;
    assertSlug(input.slug);
    const kind = input.kind ?? config.tenants.defaultKind;
    // Names are checked before anything runs: too long a name is refused here.
    tenancyModel(kind).place(input.slug, config.tenants);
    const set = await this.ctx.migrations.current();
    return operations.run({ command: 'tenant create', tenant: input.slug, arguments: { ...input, kind } }, async (op) => {
      const server = await registry.getServer(input.server ?? MAIN_SERVER);
      const engine = { ...engineOptions(this.ctx), runId: op.id };
      const created = await provisionTenant({ ...input, kind, server }, set, op, { registry, storage, tenantsConfig: config.tenants, engine });
      const cleared = created.cleared ? { arguments: { ...input, kind, clearedInterruptedCreate: true } } : {};
      return { result: created.tenant, record: { versionAfter: created.result?.toVersion ?? null, ...cleared } };
    });
  }

  list(): Promise<Tenant[]> {
    return this.ctx.registry.listTenants();
  }

  get(slug: string): Promise<Tenant> {
    return this.ctx.registry.getTenant(slug);
  }

  /** What the registry records a tenant owns: its databases, schemas and role. */
  async storage(slug: string): Promise<OwnedObject[]> {
    const tenant = await this.ctx.registry.getTenant(slug);
    return (await this.ctx.registry.storage.ofTenant(tenant.id)).map((c) => ({ kind: c.kind, server: c.server, database: c.database, name: c.name }));
  }

  /**
   * Runs `fn` on a session in the tenant's database with `search_path` set to
   * the tenant's schema, so unqualified names reach the tenant's own tables.
   */
  async withClient<T>(slug: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const tenant = await this.ctx.registry.getTenant(slug);
    const server = await this.ctx.registry.getServer(tenant.server);
    return withSearchPath(server.url, tenant.database, tenant.schema, fn);
  }
}
