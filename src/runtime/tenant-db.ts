import { AsyncResource } from 'node:async_hooks';
import type pg from 'pg';
import { FlotillaError, isConnectionError } from '../core/errors.js';
import { inSessionTransaction, withBinding } from '../postgres/app-session.js';
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
  constructor(private readonly lease: (options?: { deferBinding?: boolean }) => Promise<Lease>) {}

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    // A session that served another tenant is bound in the same round trip as the query (not for a query that
    // keeps a portal open, which cannot be sent behind another).
    const lease = await this.lease({ deferBinding: typeof text === 'string' || !('rows' in text) });
    try {
      const result =
        lease.unbound === undefined ? await lease.client.query<R>(text, values) : await withBinding(lease.client, lease.unbound, () => lease.client.query<R>(text, values));
      lease.release();
      return result;
    } catch (error) {
      lease.release(sessionError(error));
      throw error;
    }
  }

  /** Runs `fn` in one transaction on one session: committed when it returns, rolled back when it throws. */
  async tx<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    return this.client((client) => inSessionTransaction(client, () => fn({ query: (text, values) => client.query(text, values) })));
  }

  /** Runs `fn` with the session itself (bound to the tenant's schema), given back when `fn` settles; unusable after. */
  async client<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const lease = await this.lease();
    const { client, revoke } = guarded(lease);
    try {
      const result = await fn(client);
      revoke();
      lease.release();
      return result;
    } catch (error) {
      revoke();
      lease.release(sessionError(error));
      throw error;
    }
  }
}

/** A lease as a pool's client: `release()` gives it back, and after that the object refuses every use. */
export function asPoolClient(lease: Lease): TenantClient {
  const { client, revoke } = guarded(lease, (error) => {
    revoke();
    lease.release(error === true ? new Error('released as broken') : error || undefined);
  });
  return client as TenantClient;
}

/**
 * The session as the tenant's code gets it: callbacks given to `query`, and
 * the events of a query object (pg.Query, a cursor, a stream), run in the
 * caller's async context, not in the one that opened the connection
 * (node-postgres #2533). Once revoked (the session went back to the budget)
 * every use throws: a kept reference cannot reach the next tenant's session.
 */
function guarded(lease: Lease, release?: (error?: unknown) => void): { client: pg.Client; revoke: () => void } {
  let revoked = false;
  const client = new Proxy(lease.client, {
    get(target, property, receiver) {
      if (property === 'release' && release) return release;
      if (revoked) throw released();
      if (property === 'query') {
        return (...args: unknown[]) => {
          const last = args.length - 1;
          if (typeof args[last] === 'function') args[last] = AsyncResource.bind(args[last] as (...a: unknown[]) => unknown);
          const first = args[0] as { submit?: unknown; emit?: (...a: unknown[]) => boolean } | undefined;
          if (first && typeof first.submit === 'function' && typeof first.emit === 'function') {
            const scope = new AsyncResource('flotilla.query');
            const emit = first.emit;
            first.emit = (...a: unknown[]) => scope.runInAsyncScope(emit, first, ...a);
          }
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    client,
    revoke: () => {
      revoked = true;
    },
  };
}

/** A failed query's error as release() takes it: only a broken connection condemns the session (its state is checked anyway). */
function sessionError(error: unknown): unknown {
  return isConnectionError(error) ? error : undefined;
}

function released(): FlotillaError<'FLO_NO_TENANT_SCOPE'> {
  return new FlotillaError('FLO_NO_TENANT_SCOPE', 'This database session was given back: it may now serve another tenant.', {
    hint: 'Use a session only inside the callback or before release(); check out a new one for later work.',
  });
}
