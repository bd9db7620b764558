import { AsyncLocalStorage } from 'node:async_hooks';
import { FlotillaError } from '../core/errors.js';
import type { Tenant } from '../core/tenant.js';

/** Where the tenant of a request was found. */
export type TenantSource = 'subdomain' | 'domain' | 'header' | 'query' | 'path' | 'custom' | 'fallback' | 'runAs';

/** The tenant a request, job or script is working for: what it may read, never a connection URL. */
export interface TenantContext extends Pick<Tenant, 'id' | 'slug' | 'kind' | 'server' | 'database' | 'schema'> {
  readonly source: TenantSource;
}

const storage = new AsyncLocalStorage<TenantContext>();

/** Runs `fn` with `tenant` as the current tenant, through every await, timer, callback and stream it starts. */
export function runInScope<T>(tenant: TenantContext, fn: () => T): T {
  return storage.run(Object.freeze({ ...tenant }), fn);
}

/** Runs `fn` outside any tenant's scope: what it starts (a connection's socket) inherits none. */
export function outsideScope<T>(fn: () => T): T {
  return storage.exit(fn);
}

/** The current tenant, or undefined outside a tenant's scope. */
export function findTenant(): TenantContext | undefined {
  return storage.getStore();
}

/**
 * The current tenant. Throws FLO_NO_TENANT_SCOPE outside a request the
 * runtime's middleware resolved, or a `runAs` callback: code that needs a
 * tenant never runs with none, or with the previous request's.
 */
export function currentTenant(): TenantContext {
  const tenant = storage.getStore();
  if (tenant) return tenant;
  throw new FlotillaError('FLO_NO_TENANT_SCOPE', 'No tenant in scope: this code ran outside a request resolved by the tenant runtime and outside runtime.runAs().', {
    hint: "Mount the runtime's middleware before this route, or wrap background work in runtime.runAs(slug, fn).",
  });
}
