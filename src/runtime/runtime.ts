import { AsyncResource } from 'node:async_hooks';
import type { DirectoryTenant } from '../control/runtime-directory.js';
import { FlotillaError } from '../core/errors.js';
import { databaseOf, withDatabase } from '../postgres/server-url.js';
import type { MaintenanceOptions } from './admission.js';
import { admit, bypasses } from './admission.js';
import type { BudgetOptions, BudgetStats } from './budget-options.js';
import type { Lease } from './connection-budget.js';
import { ConnectionBudget } from './connection-budget.js';
import type { TenantContext, TenantSource } from './context.js';
import { currentTenant, runInScope } from './context.js';
import type { RequestInfo, ResolutionOptions } from './resolution.js';
import { checkSlug, Resolver } from './resolution.js';
import type { DirectoryOptions, DirectoryStats } from './tenant-directory.js';
import { TenantDirectory } from './tenant-directory.js';
import type { TenantClient } from './tenant-db.js';
import { asPoolClient, TenantDb } from './tenant-db.js';

export interface RuntimeOptions {
  /**
   * The control database, as Flotilla's `databaseUrl` names it (server and
   * database; a URL without a database means `flotilla`). Default: FLOTILLA_DATABASE_URL.
   */
  readonly databaseUrl?: string;
  readonly resolve?: ResolutionOptions;
  readonly budget?: BudgetOptions;
  readonly registry?: DirectoryOptions;
  readonly maintenance?: MaintenanceOptions;
  /** The Retry-After, in seconds, for a tenant provisioning, upgrading or restoring (default 5). */
  readonly retryAfterSeconds?: number;
  /** The application_name of every session it opens (default `flotilla runtime`). */
  readonly applicationName?: string;
}

/** What a middleware gets for a request: its tenant, and the route without a tenant path prefix. */
export interface Admitted {
  readonly tenant: TenantContext;
  readonly url?: string;
}

export interface RuntimeStats {
  readonly connections: BudgetStats;
  readonly registry: DirectoryStats;
}

/** A pg.Pool as query builders use one (Kysely's PostgresDialect, say): each connect() is the current tenant's. */
export interface TenantPool {
  connect(): Promise<TenantClient>;
  connect(callback: (error: Error | undefined, client: TenantClient | undefined, release: (error?: unknown) => void) => void): void;
  query: TenantDb['query'];
  end(): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): TenantPool;
}

/**
 * The tenant runtime an app imports: finds each request's tenant, keeps it in
 * scope for everything the request does, and gives its code the tenant's
 * database within one connection budget shared by every tenant. Follows the
 * registry as Flotilla changes it (status, maintenance, domains, servers).
 */
export class TenantRuntime {
  /** The current tenant's database. */
  readonly db: TenantDb;
  private readonly resolver: Resolver;
  private readonly retryAfter: number;
  private readonly urls = new Map<string, string>();

  private constructor(
    private readonly options: RuntimeOptions,
    private readonly directory: TenantDirectory,
    private readonly budget: ConnectionBudget,
  ) {
    this.resolver = new Resolver(options.resolve ?? {}, (host) => directory.slugByHost(host));
    this.retryAfter = options.retryAfterSeconds ?? 5;
    this.db = new TenantDb((options) => this.lease(currentTenant(), options));
  }

  static async open(options: RuntimeOptions = {}): Promise<TenantRuntime> {
    const given = options.databaseUrl ?? process.env.FLOTILLA_DATABASE_URL;
    if (!given) {
      throw new FlotillaError('FLO_CONFIG_INVALID', 'The tenant runtime needs the control database: no databaseUrl was given and FLOTILLA_DATABASE_URL is not set.', {
        hint: 'Pass databaseUrl (the same URL as Flotilla\'s "databaseUrl") or set FLOTILLA_DATABASE_URL.',
        meta: { source: 'runtime options', problems: ['databaseUrl is missing'] },
      });
    }
    const controlUrl = withDatabase(given, databaseOf(given) ?? 'flotilla');
    const name = options.applicationName ?? 'flotilla runtime';
    const budget = new ConnectionBudget(options.budget, name);
    const directory: TenantDirectory = new TenantDirectory(controlUrl, options.registry ?? {}, name, (server) => runtime.forgetServer(server));
    const runtime: TenantRuntime = new TenantRuntime(options, directory, budget);
    try {
      if (!(await directory.start())) {
        throw new FlotillaError('FLO_CONFIG_INVALID', 'The control database has no tables for the tenant runtime: it was made by an older Flotilla.', {
          hint: 'Run any flotilla command once (flotilla status, say): it brings the control database up to date.',
          meta: { source: 'control database', problems: ['control migration 0008 not applied'] },
        });
      }
    } catch (error) {
      await runtime.close();
      throw error;
    }
    return runtime;
  }

  /**
   * The tenant a request names, checked to be servable now: FLO_TENANT_NOT_FOUND
   * (404), FLO_TENANT_UNAVAILABLE (503), FLO_TENANT_SUSPENDED (403),
   * FLO_TENANT_ARCHIVED (410), or a request naming none, several or a malformed one (400).
   */
  async admit(request: RequestInfo): Promise<Admitted> {
    const resolved = await this.resolver.resolve(request);
    const tenant = await this.servable(resolved.slug, resolved.source, request);
    return { tenant, url: resolved.url };
  }

  /** Runs `fn` with `tenant` in scope: every await, timer, callback and stream it starts sees it. */
  within<T>(tenant: TenantContext, fn: () => T): T {
    return runInScope(tenant, fn);
  }

  /**
   * Runs a background job or script as `slug`, in the same scope as a request.
   * Refuses (with the error a request would get) a tenant that is unknown,
   * suspended, archived, being changed or under maintenance, unless
   * `ignoreMaintenance` lets a job run during maintenance.
   */
  async runAs<T>(slug: string, fn: (tenant: TenantContext) => Promise<T> | T, options: { ignoreMaintenance?: boolean } = {}): Promise<T> {
    const tenant = await this.servable(checkSlug(slug, 'runAs'), 'runAs', undefined, options.ignoreMaintenance === true);
    return this.within(tenant, () => fn(tenant));
  }

  /** The current tenant (throws FLO_NO_TENANT_SCOPE outside one). */
  tenant(): TenantContext {
    return currentTenant();
  }

  /** A pg.Pool-like object for query builders and ORM driver adapters: each checkout is the current tenant's. */
  pool(): TenantPool {
    // Async, so that a checkout outside a tenant's scope rejects (or reaches the callback) instead of throwing.
    const connect = async (): Promise<TenantClient> => asPoolClient(await this.lease(currentTenant()));
    const pool: TenantPool = {
      connect: ((callback?: (error: Error | undefined, client: TenantClient | undefined, release: (error?: unknown) => void) => void) => {
        if (!callback) return connect();
        const bound = AsyncResource.bind(callback);
        connect().then(
          (client) => bound(undefined, client, (error?: unknown) => client.release(error)),
          (error: Error) => bound(error, undefined, () => undefined),
        );
      }) as TenantPool['connect'],
      query: (text, values) => this.db.query(text, values),
      end: async () => undefined,
      on: () => pool,
    };
    return pool;
  }

  stats(): RuntimeStats {
    return { connections: this.budget.stats(), registry: this.directory.stats() };
  }

  /** Closes every session: the runtime answers no more queries. */
  async close(): Promise<void> {
    await this.budget.close();
    await this.directory.close();
  }

  private async servable(slug: string, source: TenantSource, request: RequestInfo | undefined, ignoreMaintenance = false): Promise<TenantContext> {
    const found = await this.directory.tenant(slug);
    if (!found) {
      throw new FlotillaError('FLO_TENANT_NOT_FOUND', `No tenant ${slug}.`, { hint: 'Check the name: it must be a registered tenant.', meta: { tenant: slug } });
    }
    const fleet = await this.directory.fleetMaintenance();
    admit(found, fleet, ignoreMaintenance || bypasses(request, this.options.maintenance ?? {}), this.retryAfter);
    return contextOf(found, source);
  }

  private async lease(tenant: TenantContext, options: { deferBinding?: boolean } = {}): Promise<Lease> {
    const serverUrl = await this.directory.serverUrl(tenant.server);
    if (serverUrl === undefined) {
      throw new FlotillaError('FLO_SERVER_NOT_FOUND', `Tenant ${tenant.slug} is on server ${tenant.server}, which is not registered.`, {
        hint: 'Register the server (flotilla server add) or move the tenant.',
        meta: { server: tenant.server },
      });
    }
    const url = this.databaseUrl(serverUrl, tenant.database);
    // The URL is part of the key: after a server's address changed, no session to the old one is reused.
    return this.budget.acquire({ slug: tenant.slug, poolKey: `${tenant.server}/${tenant.database}/${url}`, url, schema: tenant.schema }, options);
  }

  /** A database's URL on a server, built once rather than parsed again at every checkout. */
  private databaseUrl(serverUrl: string, database: string): string {
    const key = `${database}\n${serverUrl}`;
    let url = this.urls.get(key);
    if (url === undefined) {
      if (this.urls.size >= 10_000) this.urls.clear();
      url = withDatabase(serverUrl, database);
      this.urls.set(key, url);
    }
    return url;
  }

  private forgetServer(server: string): void {
    this.budget.forgetServer(`${server}/`);
  }
}

function contextOf(t: DirectoryTenant, source: TenantSource): TenantContext {
  return { id: t.id, slug: t.slug, kind: t.kind, server: t.server, database: t.database, schema: t.schema, source };
}

/** Opens the tenant runtime on the control database (see RuntimeOptions). */
export function createRuntime(options: RuntimeOptions = {}): Promise<TenantRuntime> {
  return TenantRuntime.open(options);
}
