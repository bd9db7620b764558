import type pg from 'pg';
import type { Tenant, TenantKind, TenantStatus } from '../core/tenant.js';

/** The channel on which the control database announces every change a running app must follow (control migration 0008). */
export const RUNTIME_CHANNEL = 'flotilla_runtime';

/** A tenant or the whole fleet under maintenance. */
export interface Maintenance {
  readonly message: string | null;
  readonly retryAfter: number;
  readonly since: string;
}

/** What an app needs of a tenant to route a request to it. */
export interface DirectoryTenant extends Pick<Tenant, 'id' | 'slug' | 'kind' | 'server' | 'database' | 'schema' | 'status'> {
  readonly maintenance: Maintenance | null;
}

interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** The control plane's reads for running apps: small, by key, each one indexed. */
export class ControlDirectory {
  constructor(private readonly db: Queryable) {}

  /** The control database has the runtime's tables (control migration 0008 applied). */
  async ready(): Promise<boolean> {
    const { rows } = await this.db.query<{ ok: boolean }>(`SELECT to_regclass('flotilla.fleet_maintenance') IS NOT NULL AS ok`);
    return rows[0]?.ok === true;
  }

  async tenant(slug: string): Promise<DirectoryTenant | undefined> {
    const { rows } = await this.db.query<{
      id: string;
      slug: string;
      kind: TenantKind;
      server: string;
      database_name: string;
      schema_name: string;
      status: TenantStatus;
      maintenance: Maintenance | null;
    }>('SELECT id, slug, kind, server, database_name, schema_name, status, maintenance FROM flotilla.tenants WHERE slug = $1', [slug]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      id: row.id,
      slug: row.slug,
      kind: row.kind,
      server: row.server,
      database: row.database_name,
      schema: row.schema_name,
      status: row.status,
      maintenance: row.maintenance,
    };
  }

  /** The slug of the tenant a custom domain belongs to. */
  async slugByHost(host: string): Promise<string | undefined> {
    const { rows } = await this.db.query<{ slug: string }>('SELECT t.slug FROM flotilla.domains d JOIN flotilla.tenants t ON t.id = d.tenant_id WHERE d.host = $1', [host]);
    return rows[0]?.slug;
  }

  async fleetMaintenance(): Promise<Maintenance | null> {
    const { rows } = await this.db.query<{ message: string | null; retry_after: number; since: Date }>('SELECT message, retry_after, since FROM flotilla.fleet_maintenance');
    const row = rows[0];
    return row ? { message: row.message, retryAfter: row.retry_after, since: row.since.toISOString() } : null;
  }

  /** A registered server's URL and its password (kept apart from it). */
  async server(name: string): Promise<{ url: string; password: string | null } | undefined> {
    const { rows } = await this.db.query<{ url: string; password: string | null }>('SELECT url, password FROM flotilla.servers WHERE name = $1', [name]);
    return rows[0];
  }

  /** A round trip, to learn whether the session still answers. */
  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  /** Subscribes this session to the runtime channel. */
  async listen(): Promise<void> {
    await this.db.query(`LISTEN ${RUNTIME_CHANNEL}`);
  }
}
