import { AsyncResource } from 'node:async_hooks';
import type pg from 'pg';
import { inSessionTransaction } from '../postgres/app-session.js';
import type { Lease } from './connection-budget.js';

/** What a query or transaction callback is given: the session's query, nothing that could leave the tenant. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** A pooled session bound to one tenant, as drivers (Kysely, Drizzle, Prisma's adapter) expect a pool's client. */
export type TenantClient = pg.Client & { release(error?: unknown): void };

/**
 * The current tenant's database: one query, a transaction, or the raw session
 * for a query builder. Each call checks out a session of the tenant's database,
 * bound to its schema, within the runtime's connection budget.
 */
export class TenantDb implements Queryable {
  constructor(private readonly lease: () => Promise<Lease>) {}

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const lease = await this.lease();
    try {
      const result = await lease.client.query<R>(text, values);
      lease.release();
      return result;
    } catch (error) {
      lease.release(error);
      throw error;
    }
  }

  /** Runs `fn` in one transaction on one session: committed when it returns, rolled back when it throws. */
  async tx<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    return this.client((client) => inSessionTransaction(client, () => fn({ query: (text, values) => client.query(text, values) })));
  }

  /** Runs `fn` with the session itself (bound to the tenant's schema), given back when `fn` settles. */
  async client<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const lease = await this.lease();
    try {
      const result = await fn(inCallerContext(lease.client));
      lease.release();
      return result;
    } catch (error) {
      lease.release(error);
      throw error;
    }
  }
}

/**
 * A lease as a pool's client: `release()` gives it back; callbacks run in the
 * caller's async context (see inCallerContext).
 */
export function asPoolClient(lease: Lease): TenantClient {
  const client = inCallerContext(lease.client);
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'release') return (error?: unknown) => lease.release(error === true ? new Error('released as broken') : error || undefined);
      return Reflect.get(target, property, receiver);
    },
  }) as TenantClient;
}

/**
 * The session as the tenant's code gets it: a callback given to `query` runs
 * in the caller's async context, not in that of whoever opened the connection
 * (node-postgres #2533), so the current tenant stays right inside it.
 */
function inCallerContext(client: pg.Client): pg.Client {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'query') {
        return (...args: unknown[]) => {
          const last = args.length - 1;
          if (typeof args[last] === 'function') args[last] = AsyncResource.bind(args[last] as (...a: unknown[]) => unknown);
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
