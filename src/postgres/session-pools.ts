import pg from 'pg';
import { withDatabase } from './server-url.js';

/** A session for one tenant upgrade, and how to give it back. */
export type SessionSource = (applicationName: string) => Promise<{ client: pg.ClientBase; release(): Promise<void> }>;

/**
 * One pool of sessions per (server, database) for tenants that share a
 * database (schema tenants): thousands of them need a handful of connections,
 * not one each. A session goes back with its settings reset; one that broke is
 * discarded.
 */
export class SessionPools {
  private readonly pools = new Map<string, pg.Pool>();

  source(serverUrl: string, database: string, max: number): SessionSource {
    const key = `${serverUrl}\u0000${database}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new pg.Pool({ connectionString: withDatabase(serverUrl, database), max, application_name: 'flotilla migrate' });
      pool.on('error', () => undefined);
      this.pools.set(key, pool);
    }
    const from = pool;
    return async () => {
      const client = await from.connect();
      // Checked out, a session has no listener of the pool's: one its server ends (terminated, shut down)
      // would emit 'error' with none, and crash the process. The query that runs on it fails instead.
      let broken: Error | undefined;
      const onError = (error: Error) => {
        broken = error;
      };
      client.on('error', onError);
      return {
        client,
        release: async () => {
          try {
            if (broken) throw broken;
            await client.query('RESET ALL');
            client.removeListener('error', onError);
            client.release();
          } catch (error) {
            client.removeListener('error', onError);
            client.release(error as Error);
          }
        },
      };
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.end().catch(() => undefined)));
    this.pools.clear();
  }
}
