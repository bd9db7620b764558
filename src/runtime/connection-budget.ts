import pg from 'pg';
import { FlotillaError, toFlotillaError } from '../core/errors.js';
import { bindSession } from '../postgres/app-session.js';
import type { BudgetOptions, BudgetStats } from './budget-options.js';
import { positive } from './budget-options.js';
import type { DatabasePool, Session } from './pooled-session.js';
import { quiet, takeIdle } from './pooled-session.js';
import { outsideScope } from './context.js';

/** Where a checkout goes: the tenant, the database holding it, and its schema. */
export interface CheckoutTarget {
  readonly slug: string;
  /** The pool: one per database of a server; schema tenants of one database share it. */
  readonly poolKey: string;
  /** The database's connection URL, with its password. */
  readonly url: string;
  readonly schema: string;
}

/** A checked-out session, bound to its tenant: give it back with release() (an error destroys it). */
export interface Lease {
  readonly client: pg.Client;
  /** Set when the checkout deferred the binding: the schema its first query must be sent behind (withBinding). */
  readonly unbound?: string;
  release(error?: unknown): void;
}

interface Waiter {
  readonly target: CheckoutTarget;
  readonly resolve: (lease: Lease) => void;
  readonly reject: (error: unknown) => void;
  readonly since: number;
  /** The caller binds the session itself, in the same round trip as its query. */
  readonly deferBinding: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * Every database connection an app opens, under one ceiling. A pool per
 * database, but the ceiling counts connections, not pools: when it is reached, the
 * session idle longest anywhere is closed to open one where it is needed; when
 * none is idle, requests wait in one queue, first come first served, each tenant
 * held to its own cap, until their timeout.
 */
export class ConnectionBudget {
  private readonly max: number;
  private readonly perTenant: number;
  private readonly idleTimeoutMs: number;
  private readonly queueTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly pools = new Map<string, DatabasePool>();
  private readonly inUse = new Map<string, number>();
  private waiters: Waiter[] = [];
  private open = 0;
  private peak = 0;
  private opened = 0;
  private evicted = 0;
  private timedOut = 0;
  private checkouts = 0;
  private rebinds = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    options: BudgetOptions = {},
    private readonly applicationName = 'flotilla runtime',
  ) {
    this.max = positive('maxConnections', options.maxConnections ?? 20);
    this.perTenant = positive('maxPerTenant', options.maxPerTenant ?? Math.max(1, Math.floor(this.max / 4)));
    this.idleTimeoutMs = positive('idleTimeoutMs', options.idleTimeoutMs ?? 30_000);
    this.queueTimeoutMs = positive('queueTimeoutMs', options.queueTimeoutMs ?? 5_000);
    this.connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000);
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(100, Math.min(this.idleTimeoutMs / 2, 5_000)));
    this.sweeper.unref();
  }

  /** A session of the target's database, bound to its tenant; waits its turn within the budget. */
  acquire(target: CheckoutTarget, options: { deferBinding?: boolean } = {}): Promise<Lease> {
    if (this.closed) return Promise.reject(new FlotillaError('FLO_RUNTIME_BUSY', 'The tenant runtime is closed.', { meta: { retryAfter: 1, waitedMs: 0 } }));
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { target, resolve, reject, since: Date.now(), deferBinding: options.deferBinding === true };
      if (this.waiters.length === 0 && this.grant(waiter)) return;
      waiter.timer = setTimeout(() => this.expire(waiter), this.queueTimeoutMs);
      this.waiters.push(waiter);
      this.pump();
    });
  }

  stats(): BudgetStats {
    let idle = 0;
    for (const pool of this.pools.values()) idle += pool.idle.length;
    let inUse = 0;
    for (const n of this.inUse.values()) inUse += n;
    return {
      open: this.open,
      idle,
      inUse,
      waiting: this.waiters.length,
      pools: this.pools.size,
      peak: this.peak,
      opened: this.opened,
      evicted: this.evicted,
      timedOut: this.timedOut,
      checkouts: this.checkouts,
      rebinds: this.rebinds,
    };
  }

  /** Closes the idle sessions of every database whose pool key starts with `prefix` (a server moved): those in use close when given back. */
  forgetServer(prefix: string): void {
    for (const [key, pool] of [...this.pools]) {
      if (!key.startsWith(prefix)) continue;
      this.pools.delete(key);
      for (const session of pool.idle.splice(0)) void this.destroy(session).then(() => this.pump());
    }
  }

  /** Refuses new checkouts, fails the waiting ones, and closes every session once given back. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    clearTimeout(this.graceTimer);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(
        new FlotillaError('FLO_RUNTIME_BUSY', 'The tenant runtime closed while this query waited for a connection.', {
          meta: { retryAfter: 1, waitedMs: Date.now() - waiter.since },
        }),
      );
    }
    await Promise.all([...this.pools.values()].flatMap((pool) => pool.idle.splice(0).map((s) => this.destroy(s))));
  }

  /** Decides, at once, whether the waiter can have a session now; if so, starts giving it one. */
  private grant(waiter: Waiter): boolean {
    const { slug, poolKey } = waiter.target;
    if ((this.inUse.get(slug) ?? 0) >= this.perTenant) return false;
    const pool = this.poolOf(poolKey);
    const idle = takeIdle(pool, slug);
    if (idle) {
      this.hold(slug, 1);
      void this.deliver(waiter, idle);
      return true;
    }
    if (this.open < this.max) {
      this.open++;
      this.peak = Math.max(this.peak, this.open);
      pool.size++;
      this.hold(slug, 1);
      void this.connect(waiter, pool, undefined);
      return true;
    }
    // At the ceiling, a database whose sessions are all busy waits a moment for one of them (back within a query's
    // time) rather than closing another database's session to open its own: a new server process, with cold caches,
    // costs far more. A database holding none, or a waiter kept past the grace, takes the session idle longest.
    if (pool.size > 0 && Date.now() - waiter.since < EVICTION_GRACE_MS) {
      this.pumpAfterGrace();
      return false;
    }
    const victim = this.longestIdle();
    if (!victim) return false;
    // The victim's place under the ceiling passes to the new session, which opens once the victim has closed.
    victim.pool.idle.splice(victim.pool.idle.indexOf(victim), 1);
    this.evicted++;
    pool.size++;
    this.hold(slug, 1);
    void this.connect(waiter, pool, victim);
    return true;
  }

  private async connect(waiter: Waiter, pool: DatabasePool, victim: Session | undefined): Promise<void> {
    if (victim) {
      await this.end(victim);
      this.forgetIfEmpty(victim.pool);
    }
    let session: Session | undefined;
    try {
      // Opened outside any tenant's scope: what its socket later calls back without a binding of its own
      // sees no tenant (and fails), never the tenant whose request happened to open it.
      session = await outsideScope(async () => {
        const client = new pg.Client({
          connectionString: waiter.target.url,
          application_name: this.applicationName,
          connectionTimeoutMillis: this.connectTimeoutMs,
          keepAlive: true,
        });
        const opened: Session = { client, pool, boundTo: null, idleSince: 0, broken: false };
        client.on('error', () => this.onSessionError(opened));
        client.on('end', () => this.onSessionError(opened));
        await client.connect();
        return opened;
      });
      this.opened++;
    } catch (error) {
      if (session) await session.client.end().catch(() => undefined);
      this.open--;
      pool.size--;
      this.forgetIfEmpty(pool);
      this.hold(waiter.target.slug, -1);
      clearTimeout(waiter.timer);
      waiter.reject(toFlotillaError(error));
      this.pump();
      return;
    }
    await this.deliver(waiter, session);
  }

  /** Binds the session to the waiter's tenant (reset first when it served another) and hands it over. */
  private async deliver(waiter: Waiter, session: Session): Promise<void> {
    const { slug, schema } = waiter.target;
    clearTimeout(waiter.timer);
    let unbound: string | undefined;
    if (session.boundTo !== slug && waiter.deferBinding) {
      // The caller sends the binding with its query (withBinding). Should that fail, the session is left in a
      // failed transaction and is closed when given back, so counting it bound now cannot mislead.
      if (session.boundTo !== null) this.rebinds++;
      session.boundTo = slug;
      unbound = schema;
    } else if (session.boundTo !== slug) {
      if (session.boundTo !== null) this.rebinds++;
      try {
        await bindSession(session.client, schema);
        session.boundTo = slug;
      } catch (error) {
        this.hold(slug, -1);
        await this.destroy(session);
        waiter.reject(toFlotillaError(error));
        this.pump();
        return;
      }
    }
    let released = false;
    this.checkouts++;
    waiter.resolve({
      client: session.client,
      unbound,
      release: (error?: unknown) => {
        if (released) return;
        released = true;
        this.release(session, slug, error);
      },
    });
  }

  private release(session: Session, slug: string, error: unknown): void {
    this.hold(slug, -1);
    // A session in a transaction, still running or holding queries, ended, broken, or given back with an
    // error is not trusted with the next query.
    if (error !== undefined || session.broken || !quiet(session.client) || this.closed || this.pools.get(session.pool.key) !== session.pool) {
      void this.destroy(session).then(() => this.pump());
      return;
    }
    session.idleSince = Date.now();
    session.pool.idle.push(session);
    this.pump();
  }

  /** Serves the waiters again once a grace has passed, for those whose database gave no session back meanwhile. */
  private pumpAfterGrace(): void {
    if (this.graceTimer || this.closed) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      this.pump();
    }, EVICTION_GRACE_MS);
    this.graceTimer.unref();
  }

  /** Serves waiters in order, skipping those held back by their tenant's cap. */
  private pump(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const waiter of this.waiters) if (!this.grant(waiter)) still.push(waiter);
    this.waiters = still;
  }

  private expire(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter);
    if (index < 0) return;
    this.waiters.splice(index, 1);
    this.timedOut++;
    const waitedMs = Date.now() - waiter.since;
    waiter.reject(
      new FlotillaError('FLO_RUNTIME_BUSY', `No database connection came free for tenant ${waiter.target.slug} within ${waitedMs} ms (at most ${this.max} open).`, {
        hint: 'Retry shortly; if this happens under normal load, raise budget.maxConnections or budget.queueTimeoutMs.',
        meta: { retryAfter: 1, waitedMs },
      }),
    );
  }

  private onSessionError(session: Session): void {
    session.broken = true;
    const index = session.pool.idle.indexOf(session);
    if (index >= 0) {
      session.pool.idle.splice(index, 1);
      void this.destroy(session).then(() => this.pump());
    }
  }

  /** Closes a session and frees its place under the ceiling once it has closed. */
  private async destroy(session: Session): Promise<void> {
    await this.end(session);
    this.open--;
    this.forgetIfEmpty(session.pool);
  }

  /**
   * Ends a session; resolves once its server process has gone (the socket
   * closed), or after a second, with the socket destroyed, when its server
   * does not answer (a dead peer would otherwise hold a place for minutes).
   */
  private async end(session: Session): Promise<void> {
    session.pool.size--;
    let timer: NodeJS.Timeout | undefined;
    const ended = session.client.end().catch(() => undefined);
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        (session.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
        resolve();
      }, 1_000);
    });
    await Promise.race([ended, late]);
    clearTimeout(timer);
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const pool of [...this.pools.values()]) {
      const stale = pool.idle.filter((s) => s.idleSince <= cutoff);
      if (stale.length === 0) continue;
      pool.idle.splice(0, pool.idle.length, ...pool.idle.filter((s) => s.idleSince > cutoff));
      for (const session of stale) void this.destroy(session).then(() => this.pump());
    }
  }

  private longestIdle(): Session | undefined {
    let oldest: Session | undefined;
    for (const pool of this.pools.values()) {
      const first = pool.idle[0];
      if (first && (!oldest || first.idleSince < oldest.idleSince)) oldest = first;
    }
    return oldest;
  }

  private poolOf(key: string): DatabasePool {
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { key, idle: [], size: 0 };
      this.pools.set(key, pool);
    }
    return pool;
  }

  private forgetIfEmpty(pool: DatabasePool): void {
    if (pool.size === 0 && pool.idle.length === 0 && this.pools.get(pool.key) === pool) this.pools.delete(pool.key);
  }

  private hold(slug: string, delta: number): void {
    const n = (this.inUse.get(slug) ?? 0) + delta;
    if (n <= 0) this.inUse.delete(slug);
    else this.inUse.set(slug, n);
  }
}

/** How long a checkout at the ceiling waits for its own database's busy sessions before it closes another database's idle one. */
const EVICTION_GRACE_MS = 50;
