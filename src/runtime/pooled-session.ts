import type pg from 'pg';

/** A session the budget holds: open, bound to the tenant it last served. */
export interface Session {
  readonly client: pg.Client;
  readonly pool: DatabasePool;
  /** The tenant this session was last bound to: another tenant's checkout resets it first. */
  boundTo: string | null;
  idleSince: number;
  broken: boolean;
}

export interface DatabasePool {
  readonly key: string;
  /** Idle sessions, the most recently used last. */
  readonly idle: Session[];
  /** Sessions of this pool open, opening or in use. */
  size: number;
}

/** No transaction open, no query running or queued, not ending: the session can serve another query. */
export function quiet(client: pg.Client): boolean {
  const internal = client as unknown as { _ending?: boolean; _queryable?: boolean; _activeQuery?: unknown; _queryQueue?: unknown[]; _sentQueryQueue?: unknown[] };
  return (
    client.getTransactionStatus() === 'I' &&
    internal._ending !== true &&
    internal._queryable !== false &&
    !internal._activeQuery &&
    (internal._queryQueue?.length ?? 0) === 0 &&
    (internal._sentQueryQueue?.length ?? 0) === 0
  );
}

/** An idle session of the pool, preferably one already bound to the tenant (no reset needed). */
export function takeIdle(pool: DatabasePool, slug: string): Session | undefined {
  for (let i = pool.idle.length - 1; i >= 0; i--) {
    if (pool.idle[i]!.boundTo === slug) return pool.idle.splice(i, 1)[0];
  }
  return pool.idle.pop();
}
