import { BundleInstalls } from './bundle-installs.js';
import pg from 'pg';
import { AuditLog } from './audit-log.js';
import { BackupCatalog } from './backup-catalog.js';
import { RolloutStore } from './rollout-store.js';
import { withClient } from '../postgres/connect.js';
import { adminDatabase, splitPassword, withDatabase, withPassword } from '../postgres/server-url.js';
import { LOCK_NAMESPACES } from '../postgres/lock-namespaces.js';
import { processTag } from '../postgres/process-tag.js';
import { OperationStore } from './operations.js';
import { RuntimeSettings } from './runtime-settings.js';
import { StorageRegistry } from './storage.js';
import { inTransaction } from './transaction.js';
import { FlotillaError } from '../core/errors.js';
import type { Server, Tenant, TenantKind, TenantPlacement, TenantStatus } from '../core/tenant.js';
import { MAIN_SERVER } from '../core/tenant.js';

export const CONTROL_SCHEMA = 'flotilla';

interface TenantRow {
  id: string;
  slug: string;
  name: string;
  kind: TenantKind;
  server: string;
  database_name: string;
  schema_name: string;
  status: TenantStatus;
  plan: string | null;
  settings: Record<string, unknown>;
  tags: string[];
  domains: { host: string; primary: boolean }[] | null;
  created_at: Date;
  updated_at: Date;
}

const TENANT_COLUMNS = `t.id, t.slug, t.name, t.kind, t.server, t.database_name, t.schema_name, t.status, t.plan, t.settings, t.tags,
  t.created_at, t.updated_at,
  (SELECT json_agg(json_build_object('host', d.host, 'primary', d.is_primary) ORDER BY d.host) FROM flotilla.domains d WHERE d.tenant_id = t.id) AS domains`;

/** The control plane's tables, through one small pool on the control database. */
export class Registry {
  /** The append-only audit trail, on the same pool. */
  readonly audit: AuditLog;
  readonly backups: BackupCatalog;
  readonly rollouts: RolloutStore;
  /** Who owns each database, schema and file Flotilla made. */
  readonly storage: StorageRegistry;
  /** Mutating commands while they run. */
  readonly operations: OperationStore;
  /** Maintenance and custom domains, which running apps follow. */
  readonly runtime: RuntimeSettings;
  /** Signed bundles applied at this site. */
  readonly bundles: BundleInstalls;

  private constructor(
    private readonly pool: pg.Pool,
    /** The main server's connection URL: its password comes from the configuration, never from the registry. */
    private readonly mainUrl: string,
  ) {
    this.audit = new AuditLog(pool);
    this.backups = new BackupCatalog(pool);
    this.rollouts = new RolloutStore(pool);
    this.storage = new StorageRegistry(pool);
    this.operations = new OperationStore(pool);
    this.runtime = new RuntimeSettings(pool);
    this.bundles = new BundleInstalls(pool);
  }

  /** Runs `fn` in one transaction of the control database (claims and catalog rows changed together). */
  inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  /** Each server's limit on migrations at once: its own setting, else a quarter of its max_connections (1 to 16). */
  async serverLimits(servers: readonly Server[]): Promise<Map<string, number>> {
    const { rows } = await this.pool.query<{ name: string; max_concurrent_migrations: number | null }>('SELECT name, max_concurrent_migrations FROM flotilla.servers');
    const configured = new Map(rows.map((r) => [r.name, r.max_concurrent_migrations]));
    const limits = new Map<string, number>();
    for (const server of servers) {
      const own = configured.get(server.name);
      if (own) {
        limits.set(server.name, own);
        continue;
      }
      const max = await withClient(server.url, adminDatabase(server.url), async (c) => Number((await c.query(`SELECT current_setting('max_connections') AS m`)).rows[0].m)).catch(
        () => 16,
      );
      limits.set(server.name, Math.max(1, Math.min(16, Math.floor(max / 4))));
    }
    return limits;
  }

  async setServerLimit(name: string, limit: number | null): Promise<void> {
    await this.getServer(name);
    await this.pool.query('UPDATE flotilla.servers SET max_concurrent_migrations = $2 WHERE name = $1', [name, limit]);
  }

  async setTags(slug: string, tags: readonly string[]): Promise<void> {
    await this.getTenant(slug);
    await this.pool.query('UPDATE flotilla.tenants SET tags = $2, updated_at = now() WHERE slug = $1', [slug, tags]);
  }

  static open(serverUrl: string, controlDatabase: string): Registry {
    const pool = new pg.Pool({
      connectionString: withDatabase(serverUrl, controlDatabase),
      max: 4,
      min: 1,
      allowExitOnIdle: true,
      application_name: `flotilla registry ${processTag()}`,
    });
    pool.on('error', () => undefined);
    return new Registry(pool, serverUrl);
  }

  /** Moves passwords that older versions kept inside servers' URLs to their own column. */
  async separateServerPasswords(): Promise<void> {
    const { rows } = await this.pool.query<{ name: string; url: string }>(`SELECT name, url FROM flotilla.servers WHERE url ~ '^[^/]*//[^/@]*:[^/]*@' OR url ~* '[?&]password='`);
    for (const row of rows) {
      const { url, password } = splitPassword(row.url);
      await this.pool.query('UPDATE flotilla.servers SET url = $2, password = CASE WHEN name = $3 THEN NULL ELSE coalesce(password, $4) END WHERE name = $1', [
        row.name,
        url,
        MAIN_SERVER,
        password,
      ]);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  async addServer(name: string, connectionUrl: string): Promise<Server> {
    const { url, password } = splitPassword(connectionUrl);
    try {
      const { rows } = await this.pool.query<ServerRow>(`INSERT INTO flotilla.servers (name, url, password) VALUES ($1, $2, $3) RETURNING ${SERVER_COLUMNS}`, [
        name,
        url,
        password,
      ]);
      return this.toServer(rows[0]!);
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new FlotillaError('FLO_SERVER_EXISTS', `Server ${name} is already registered.`, {
          hint: 'Pick another name, or see the registered servers with `flotilla server list`.',
          meta: { server: name },
        });
      }
      throw error;
    }
  }

  /** Registers the main server unless it is there; keeps its URL current (without its password, which the configuration holds). */
  async upsertMainServer(connectionUrl: string): Promise<void> {
    const url = splitPassword(connectionUrl).url;
    // Written only when it changed: opening Flotilla is a read, not a write, on every command.
    const { rows } = await this.pool.query<{ url: string; password: string | null }>('SELECT url, password FROM flotilla.servers WHERE name = $1', [MAIN_SERVER]);
    if (rows[0]?.url === url && rows[0].password === null) return;
    await this.pool.query('INSERT INTO flotilla.servers (name, url) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, password = NULL', [MAIN_SERVER, url]);
  }

  async listServers(): Promise<Server[]> {
    const { rows } = await this.pool.query<ServerRow>(`SELECT ${SERVER_COLUMNS} FROM flotilla.servers ORDER BY name`);
    return rows.map((row) => this.toServer(row));
  }

  /** A server's connection URL, by name. */
  async serverUrl(name: string): Promise<string> {
    return (await this.getServer(name)).url;
  }

  async getServer(name: string): Promise<Server> {
    const { rows } = await this.pool.query<ServerRow>(`SELECT ${SERVER_COLUMNS} FROM flotilla.servers WHERE name = $1`, [name]);
    if (!rows[0]) {
      throw new FlotillaError('FLO_SERVER_NOT_FOUND', `No server named ${name}.`, {
        hint: 'Register the server first, or place the tenant on one of the registered servers.',
        meta: { server: name },
      });
    }
    return this.toServer(rows[0]);
  }

  /** A server with its connection URL: the stored URL and password, or the configured URL for the main server. */
  private toServer(row: ServerRow): Server {
    const url = row.name === MAIN_SERVER ? this.mainUrl : withPassword(row.url, row.password);
    return { name: row.name, url, createdAt: row.created_at.toISOString() };
  }

  async insertTenant(input: {
    slug: string;
    name: string;
    kind: TenantKind;
    server: string;
    database: string;
    schema: string;
    plan?: string | null;
    settings?: Record<string, unknown>;
    /** The operation making it: if that dies, the tenant is removed with what it made. */
    operationId: string | null;
  }): Promise<Tenant> {
    try {
      await this.pool.query(
        `INSERT INTO flotilla.tenants (slug, name, kind, server, database_name, schema_name, status, plan, settings, operation_id)
         VALUES ($1, $2, $3, $4, $5, $6, 'provisioning', $7, $8, $9)`,
        [input.slug, input.name, input.kind, input.server, input.database, input.schema, input.plan ?? null, input.settings ?? {}, input.operationId],
      );
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new FlotillaError('FLO_TENANT_EXISTS', `Tenant ${input.slug} already exists (or its database/schema is taken).`, {
          hint: 'Pick another slug, or see it with `flotilla tenant show <slug>`.',
          meta: { tenant: input.slug },
        });
      }
      throw error;
    }
    return this.getTenant(input.slug);
  }

  async setStatus(slug: string, status: TenantStatus): Promise<void> {
    await this.pool.query('UPDATE flotilla.tenants SET status = $2, updated_at = now() WHERE slug = $1', [slug, status]);
  }

  /** A provisioned tenant becomes active and no longer belongs to the operation that made it. */
  async activate(slug: string): Promise<void> {
    await this.pool.query(`UPDATE flotilla.tenants SET status = 'active', operation_id = NULL, updated_at = now() WHERE slug = $1`, [slug]);
  }

  /** Whether no process of an older version is creating this slug (they held this lock while they did). */
  async legacyCreateFree(slug: string): Promise<boolean> {
    return this.inTransaction(async (client) => {
      const { rows } = await client.query<{ free: boolean }>('SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS free', [LOCK_NAMESPACES.tenantCreate, slug]);
      return rows[0]!.free;
    });
  }

  /** The operation provisioning a tenant: undefined when there is no such tenant, null when none is recorded. */
  async provisioningOperation(slug: string): Promise<string | null | undefined> {
    const { rows } = await this.pool.query<{ operation_id: string | null }>('SELECT operation_id FROM flotilla.tenants WHERE slug = $1', [slug]);
    return rows[0] ? rows[0].operation_id : undefined;
  }

  /** Tenants an operation was still provisioning. */
  async provisioningBy(operationId: string): Promise<Tenant[]> {
    const { rows } = await this.pool.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM flotilla.tenants t WHERE t.operation_id = $1 AND t.status = 'provisioning'`, [operationId]);
    return rows.map(toTenant);
  }

  async deleteTenant(slug: string): Promise<void> {
    await this.pool.query('DELETE FROM flotilla.tenants WHERE slug = $1', [slug]);
  }

  /** Whether a tenant is still being made: `provisioning`, by its id (false once activated or gone). */
  async stillProvisioning(tenant: Tenant): Promise<boolean> {
    const { rows } = await this.pool.query(`SELECT 1 FROM flotilla.tenants WHERE id = $1 AND status = 'provisioning'`, [tenant.id]);
    return rows.length > 0;
  }

  /** Removes a tenant that was never finished: by its id, and only while it is still `provisioning`. */
  async deleteUnfinishedTenant(tenant: Tenant): Promise<void> {
    await this.pool.query(`DELETE FROM flotilla.tenants WHERE id = $1 AND status = 'provisioning'`, [tenant.id]);
  }

  async findTenant(slug: string): Promise<Tenant | undefined> {
    const { rows } = await this.pool.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM flotilla.tenants t WHERE t.slug = $1`, [slug]);
    return rows[0] ? toTenant(rows[0]) : undefined;
  }

  async getTenant(slug: string): Promise<Tenant> {
    const tenant = await this.findTenant(slug);
    if (!tenant) {
      throw new FlotillaError('FLO_TENANT_NOT_FOUND', `No tenant with slug ${slug}.`, {
        hint: 'See the registered tenants with `flotilla tenant list`, or create it with `flotilla tenant create <slug>`.',
        meta: { tenant: slug },
      });
    }
    return tenant;
  }

  /** Where every tenant lives, and its status, without the rest of its row: what `status` reads for thousands. */
  async tenantPlacements(): Promise<TenantPlacement[]> {
    const { rows } = await this.pool.query<{ slug: string; kind: Tenant['kind']; status: Tenant['status']; server: string; database: string; schema: string }>(
      'SELECT slug, kind, status, server, database_name AS database, schema_name AS schema FROM flotilla.tenants ORDER BY slug',
    );
    return rows;
  }

  async listTenants(): Promise<Tenant[]> {
    const { rows } = await this.pool.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM flotilla.tenants t ORDER BY t.slug`);
    return rows.map(toTenant);
  }
}

interface ServerRow {
  name: string;
  url: string;
  password: string | null;
  created_at: Date;
}

const SERVER_COLUMNS = 'name, url, password, created_at';

function toTenant(row: TenantRow): Tenant {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    kind: row.kind,
    server: row.server,
    database: row.database_name,
    schema: row.schema_name,
    status: row.status,
    plan: row.plan,
    settings: row.settings,
    tags: row.tags,
    domains: row.domains ?? [],
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
