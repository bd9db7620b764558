/**
 * flotilla/runtime/cache: one Redis connection shared by every tenant, each
 * tenant's keys under `<prefix><slug>:`. Flushing a tenant removes its keys
 * and nobody else's: Laravel Tenancy's cache clear once cleared every tenant
 * (archtechx/tenancy #645). ioredis is an optional peer: the client is typed by
 * the few commands used, so this file loads no Redis package.
 */
import { FlotillaError } from '../core/errors.js';
import { assertSlugReference } from '../core/slug.js';
import { currentTenant } from './context.js';

/** The default key prefix: `tenant:<slug>:<key>`. */
export const DEFAULT_CACHE_PREFIX = 'tenant:';

/** Keys one SCAN step asks Redis to look at; each step's matches are UNLINKed before the next. */
const SCAN_COUNT = 500;

export interface CacheKeyOptions {
  /** Put before the slug (default `tenant:`); the same for every tenant of an app. */
  readonly prefix?: string;
}

/** The commands `flush` and `flushTenant` send: an ioredis client (or node) has them. */
export interface RedisScanner {
  scan(cursor: string, matchToken: 'MATCH', pattern: string, countToken: 'COUNT', count: number): Promise<[cursor: string, elements: string[]]>;
  unlink(...keys: string[]): Promise<number>;
  /** ioredis's options: its `keyPrefix` is added to every key, but not to a SCAN's MATCH nor removed from its answer. */
  readonly options?: { readonly keyPrefix?: string };
}

/** The commands a tenant cache sends: a subset of an ioredis client's, so an ioredis `Redis` fits. */
export interface RedisCommands extends RedisScanner {
  get(key: string): Promise<string | null>;
  set(key: string, value: string | number): Promise<unknown>;
  set(key: string, value: string | number, secondsToken: 'EX', seconds: number): Promise<unknown>;
  del(...keys: string[]): Promise<number>;
  incr(key: string): Promise<number>;
  expire(key: string, seconds: number): Promise<number>;
  ttl(key: string): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  mget(...keys: string[]): Promise<(string | null)[]>;
  hget(key: string, field: string): Promise<string | null>;
  hset(key: string, ...fieldValues: (string | number)[]): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
}

/** The current tenant's view of a shared Redis connection: every key is under its prefix. */
export interface TenantCache {
  /** The full Redis key of `key` for the current tenant, for commands this object does not wrap. */
  key(key: string): string;
  get(key: string): Promise<string | null>;
  /** Sets `key`; with `ex`, it expires after that many seconds. */
  set(key: string, value: string | number, options?: { readonly ex?: number }): Promise<void>;
  del(...keys: string[]): Promise<number>;
  incr(key: string): Promise<number>;
  /** Whether the key existed to be given the expiry. */
  expire(key: string, seconds: number): Promise<boolean>;
  /** Seconds to live; -1 without expiry, -2 when the key does not exist (Redis's TTL). */
  ttl(key: string): Promise<number>;
  exists(key: string): Promise<boolean>;
  mget(...keys: string[]): Promise<(string | null)[]>;
  hget(key: string, field: string): Promise<string | null>;
  hset(key: string, fields: Readonly<Record<string, string | number>>): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
  /** Removes every key of the current tenant, and only those; answers how many it removed. */
  flush(): Promise<number>;
}

/** `tenant:<slug>:<key>` for the current tenant (FLO_NO_TENANT_SCOPE outside a tenant's scope). */
export function cacheKey(key: string, options: CacheKeyOptions = {}): string {
  return `${tenantPrefix(currentTenant().slug, options.prefix)}${key}`;
}

/**
 * A cache over one Redis connection for all tenants: each call works for the
 * tenant in scope when it is made, so one object serves every request.
 */
export function tenantCache(redis: RedisCommands, options: CacheKeyOptions = {}): TenantCache {
  const k = (key: string) => cacheKey(key, options);
  return {
    key: k,
    get: (key) => redis.get(k(key)),
    async set(key, value, { ex } = {}) {
      if (ex === undefined) await redis.set(k(key), value);
      else await redis.set(k(key), value, 'EX', seconds(ex));
    },
    del: (...keys) => (keys.length === 0 ? Promise.resolve(0) : redis.del(...keys.map(k))),
    incr: (key) => redis.incr(k(key)),
    expire: async (key, ttl) => (await redis.expire(k(key), seconds(ttl))) === 1,
    ttl: (key) => redis.ttl(k(key)),
    exists: async (key) => (await redis.exists(k(key))) === 1,
    mget: (...keys) => (keys.length === 0 ? Promise.resolve([]) : redis.mget(...keys.map(k))),
    hget: (key, field) => redis.hget(k(key), field),
    hset: (key, fields) => redis.hset(k(key), ...Object.entries(fields).flat()),
    hgetall: (key) => redis.hgetall(k(key)),
    flush: () => flushTenant(redis, currentTenant().slug, options),
  };
}

/**
 * Removes every key of tenant `slug` (for operators: deleting or resetting a
 * tenant). SCAN with MATCH on `<prefix><slug>:*`, UNLINK batch by batch: never
 * KEYS, which blocks Redis while it walks every key of every tenant. The `:`
 * after the slug keeps `ab` from matching `ab-cd`'s keys. Keys written while it
 * runs may survive (SCAN promises only the keys there from start to end). On
 * Redis Cluster, call it for each master node.
 */
export async function flushTenant(redis: RedisScanner, slug: string, options: CacheKeyOptions = {}): Promise<number> {
  assertSlugReference(slug);
  const clientPrefix = redis.options?.keyPrefix ?? '';
  const pattern = `${escapeGlob(clientPrefix + tenantPrefix(slug, options.prefix))}*`;
  let removed = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    // The client adds its keyPrefix again to UNLINK's keys: the names SCAN answered carry it already.
    if (found.length > 0) removed += await redis.unlink(...found.map((name) => name.slice(clientPrefix.length)));
  } while (cursor !== '0');
  return removed;
}

/** A Redis glob matching `text` literally: `*`, `?`, `[`, `]` and `\` escaped. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function tenantPrefix(slug: string, prefix = DEFAULT_CACHE_PREFIX): string {
  return `${prefix}${slug}:`;
}

function seconds(value: number): number {
  if (Number.isInteger(value) && value > 0) return value;
  throw new FlotillaError('FLO_USAGE', `An expiry must be a whole number of seconds above 0, not ${String(value)}.`, {
    hint: 'Pass { ex: 60 } for a minute; delete the key instead of giving it an expiry of 0.',
  });
}
