import pg from 'pg';
import type { DirectoryTenant, Maintenance } from '../control/runtime-directory.js';
import { ControlDirectory } from '../control/runtime-directory.js';
import { MAIN_SERVER } from '../core/tenant.js';
import { withPassword } from '../postgres/server-url.js';

export interface DirectoryOptions {
  /** How long a lookup is trusted while the notification channel is up: a safety net only (default 60 s). */
  readonly ttlMs?: number;
  /** How long a lookup is trusted while the channel is down, until it is back (default 1 s). */
  readonly fallbackTtlMs?: number;
  /** The first wait before reconnecting the channel; it doubles up to maxBackoffMs (default 100 ms). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /**
   * Lookups kept by slug and by host, each, at most: the oldest goes first, so
   * that requests naming random tenants or hosts cannot grow the cache without end (default 10,000).
   */
  readonly maxEntries?: number;
}

interface Entry<T> {
  value?: T;
  at: number;
  pending?: Promise<T>;
}

export interface DirectoryStats {
  /** Lookups sent to the control database since the start. */
  readonly queries: number;
  /** The notification channel is connected and listening. */
  readonly listening: boolean;
  readonly notifications: number;
  readonly reconnects: number;
  /** Lookups held in the cache now (tenants, hosts and servers). */
  readonly cached: number;
}

/**
 * The registry as a running app sees it: lookups by slug, host and server,
 * cached, and dropped from the cache as soon as the control database announces
 * a change (LISTEN/NOTIFY). While the channel is down, a lookup is trusted for
 * fallbackTtlMs only; the channel reconnects with backoff, and everything
 * cached is dropped when it is back (changes made meanwhile were not heard).
 */
export class TenantDirectory {
  private readonly tenants = new Map<string, Entry<DirectoryTenant | undefined>>();
  private readonly hosts = new Map<string, Entry<string | undefined>>();
  private readonly servers = new Map<string, Entry<string | undefined>>();
  private fleet: Entry<Maintenance | null> = { at: 0 };
  private readonly reader: ControlDirectory;
  private readonly pool: pg.Pool;
  private listener: pg.Client | undefined;
  private listening = false;
  private closed = false;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private queries = 0;
  private notifications = 0;
  private reconnects = 0;
  private readonly ttlMs: number;
  private readonly fallbackTtlMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxEntries: number;

  constructor(
    /** The control database's URL, with its password: also the main server's. */
    private readonly controlUrl: string,
    options: DirectoryOptions,
    private readonly applicationName: string,
    /** Told when a server's address changed, so that its pools are closed. */
    private readonly onServerChange: (server: string) => void,
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.fallbackTtlMs = options.fallbackTtlMs ?? 1_000;
    this.backoffMs = options.backoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.backoff = this.backoffMs;
    // Bounded waits: a control database out of reach fails a lookup in seconds, never holds requests for minutes.
    this.pool = new pg.Pool({
      connectionString: controlUrl,
      max: 4,
      application_name: `${applicationName} (registry)`,
      allowExitOnIdle: true,
      keepAlive: true,
      connectionTimeoutMillis: CONTROL_TIMEOUT_MS,
      query_timeout: CONTROL_TIMEOUT_MS,
    });
    this.pool.on('error', () => undefined);
    this.reader = new ControlDirectory({ query: (text, values) => this.count(() => this.pool.query(text, values)) });
  }

  /** Connects the notification channel; fails when the control database lacks the runtime's tables. */
  async start(): Promise<boolean> {
    const ready = await this.reader.ready();
    if (ready) await this.connectListener();
    return ready;
  }

  stats(): DirectoryStats {
    const cached = this.tenants.size + this.hosts.size + this.servers.size;
    return { queries: this.queries, listening: this.listening, notifications: this.notifications, reconnects: this.reconnects, cached };
  }

  tenant(slug: string): Promise<DirectoryTenant | undefined> {
    return this.cached(this.tenants, slug, () => this.reader.tenant(slug));
  }

  slugByHost(host: string): Promise<string | undefined> {
    return this.cached(this.hosts, host, () => this.reader.slugByHost(host));
  }

  fleetMaintenance(): Promise<Maintenance | null> {
    const entry = this.fleet;
    if (entry.pending) return entry.pending;
    if (entry.at > 0 && this.fresh(entry.at)) return Promise.resolve(entry.value ?? null);
    const pending = this.reader.fleetMaintenance();
    this.fleet = { at: entry.at, value: entry.value, pending };
    return pending.then(
      (value) => {
        if (this.fleet.pending === pending) this.fleet = { at: Date.now(), value };
        return value;
      },
      (error) => {
        if (this.fleet.pending === pending) this.fleet = { at: 0 };
        throw error;
      },
    );
  }

  /** A server's connection URL with its password: the control database's own for the main server. */
  async serverUrl(name: string): Promise<string | undefined> {
    if (name === MAIN_SERVER) return this.controlUrl;
    return this.cached(this.servers, name, async () => {
      const row = await this.reader.server(name);
      return row ? withPassword(row.url, row.password) : undefined;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    await this.listener?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }

  private fresh(at: number): boolean {
    return Date.now() - at < (this.listening ? this.ttlMs : this.fallbackTtlMs);
  }

  private cached<T>(map: Map<string, Entry<T>>, key: string, load: () => Promise<T>): Promise<T> {
    const entry = map.get(key);
    if (entry?.pending) return entry.pending;
    if (entry && this.fresh(entry.at)) return Promise.resolve(entry.value as T);
    const pending = load();
    const placeholder: Entry<T> = { at: 0, pending };
    // What was known before: served again if the control database cannot answer now, while not older than ttlMs.
    const previous = entry && !entry.pending && Date.now() - entry.at < this.ttlMs ? entry : undefined;
    // Re-inserted, so that the first key is always the one looked up longest ago.
    map.delete(key);
    map.set(key, placeholder);
    if (map.size > this.maxEntries) map.delete(map.keys().next().value!);
    // A notification that arrives while the lookup runs removes the placeholder: the stale answer is then not kept.
    return pending.then(
      (value) => {
        if (map.get(key) === placeholder) map.set(key, { at: Date.now(), value });
        return value;
      },
      (error) => {
        if (map.get(key) !== placeholder) throw error;
        if (previous) {
          map.set(key, previous);
          return previous.value as T;
        }
        map.delete(key);
        throw error;
      },
    );
  }

  private async count<T>(fn: () => Promise<T>): Promise<T> {
    this.queries++;
    return fn();
  }

  private async connectListener(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.controlUrl,
      application_name: `${this.applicationName} (listener)`,
      keepAlive: true,
      connectionTimeoutMillis: CONTROL_TIMEOUT_MS,
      query_timeout: CONTROL_TIMEOUT_MS,
    });
    const lost = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.listening = false;
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => this.onNotification(message.payload ?? ''));
    this.listener = client;
    try {
      await client.connect();
      await new ControlDirectory(client).listen();
    } catch (error) {
      lost();
      throw error;
    }
    if (this.listener !== client) return;
    // Changes made while nobody listened were not heard: forget everything cached.
    this.tenants.clear();
    this.hosts.clear();
    this.servers.clear();
    this.fleet = { at: 0 };
    this.listening = true;
    this.backoff = this.backoffMs;
    this.heartbeat(client);
  }

  /**
   * A channel whose connection died silently (a NAT or load balancer dropped
   * it) delivers nothing and reports no error: it is asked for an answer every
   * few seconds, and counted lost when none comes.
   */
  private heartbeat(client: pg.Client): void {
    const timer = setInterval(() => {
      if (this.listener !== client) return clearInterval(timer);
      new ControlDirectory(client).ping().catch(() => {
        if (this.listener !== client) return;
        client.emit('error', new Error('the notification channel stopped answering'));
      });
    }, HEARTBEAT_MS);
    timer.unref();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    // Jittered, so that many apps that lost the control database together do not come back at the same instant.
    const wait = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, this.maxBackoffMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed) return;
      this.reconnects++;
      this.connectListener().catch(() => undefined);
    }, wait);
    this.reconnectTimer.unref();
  }

  private onNotification(payload: string): void {
    this.notifications++;
    const colon = payload.indexOf(':');
    const kind = colon < 0 ? payload : payload.slice(0, colon);
    const key = payload.slice(colon + 1);
    if (kind === 'tenant') this.tenants.delete(key);
    else if (kind === 'domain') this.hosts.delete(key);
    else if (kind === 'server') {
      this.servers.delete(key);
      this.onServerChange(key);
    } else this.fleet = { at: 0 };
  }
}

/** How long a lookup or the channel's connection may take before it counts as failed. */
const CONTROL_TIMEOUT_MS = 5_000;
/** How often the notification channel is asked whether it still answers. */
const HEARTBEAT_MS = 5_000;
