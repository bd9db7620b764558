import { AsyncLocalStorage } from 'node:async_hooks';
import { FlotillaError } from '../core/errors.js';
import type { TenantKind } from '../core/tenant.js';

/** Where the tenant of a request was found. */
export type TenantSource = 'subdomain' | 'domain' | 'header' | 'query' | 'path' | 'custom' | 'fallback' | 'runAs';

/** The tenant a request, job or script is working for: what it may read, never a connection URL. */
export interface TenantContext {
  readonly id: string;
  readonly slug: string;
  readonly kind: TenantKind;
  readonly server: string;
  readonly database: string;
  readonly schema: string;
  readonly source: TenantSource;
}

interface Scope {
  readonly tenant: TenantContext;
  /** The runtime that opened the scope: its pools serve the scope's queries. */
  readonly owner: object;
}

const storage = new AsyncLocalStorage<Scope>();

/** Runs `fn` with `tenant` as the current tenant, through every await, timer, callback and stream it starts. */
export function runInScope<T>(tenant: TenantContext, owner: object, fn: () => T): T {
  return storage.run({ tenant: Object.freeze({ ...tenant }), owner }, fn);
}

/** Runs `fn` outside any tenant's scope: what it starts (a connection's socket) inherits none. */
export function outsideScope<T>(fn: () => T): T {
  return storage.exit(fn);
}

/** The current tenant, or undefined outside a tenant's scope. */
export function findTenant(): TenantContext | undefined {
  return storage.getStore()?.tenant;
}

/** The current scope's owner (a runtime), for the runtime to check the scope is its own. */
export function scopeOwner(): object | undefined {
  return storage.getStore()?.owner;
}

/**
 * The current tenant. Throws FLO_NO_TENANT_SCOPE outside a request the
 * runtime's middleware resolved, or a `runAs` callback: code that needs a
 * tenant never runs with none, or with the previous request's.
 */
export function currentTenant(): TenantContext {
  const tenant = storage.getStore()?.tenant;
  if (tenant) return tenant;
  throw new FlotillaError('FLO_NO_TENANT_SCOPE', 'No tenant in scope: this code ran outside a request resolved by the tenant runtime and outside runtime.runAs().', {
    hint: "Mount the runtime's middleware before this route, or wrap background work in runtime.runAs(slug, fn).",
  });
}
