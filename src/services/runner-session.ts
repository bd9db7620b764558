import type pg from 'pg';
import type { RunnerIdentity } from '../control/rollout-store.js';
import { becomeRunner } from '../control/rollout-store.js';
import { connect } from '../postgres/connect.js';
import { processTag } from '../postgres/process-tag.js';

interface Session {
  readonly client: pg.Client;
  readonly identity: RunnerIdentity;
  alive: boolean;
}

/**
 * This process as a rollout runner: a session of the control database holding
 * its liveness lock until close(). Others see the runner alive while it is held;
 * a runner killed with SIGKILL loses its session, and with it the lock.
 */
export class RunnerSession {
  private session: Promise<Session> | undefined;

  constructor(
    private readonly serverUrl: string,
    private readonly controlDatabase: string,
  ) {}

  async identity(): Promise<RunnerIdentity> {
    return (await this.current()).identity;
  }

  /** The key of the lock this process holds, and whether its session still works. */
  async liveness(): Promise<{ key: number; alive: () => boolean }> {
    const session = await this.current();
    return { key: session.identity.key, alive: () => session.alive };
  }

  async close(): Promise<void> {
    if (this.session) await (await this.session.catch(() => undefined))?.client.end().catch(() => undefined);
    this.session = undefined;
  }

  private async current(): Promise<Session> {
    // A session that broke is replaced for what starts next (what runs now stops at its next check).
    const current = this.session ? await this.session.catch(() => undefined) : undefined;
    if (this.session && !current?.alive) {
      await current?.client.end().catch(() => undefined);
      this.session = undefined;
    }
    this.session ??= (async () => {
      const client = await connect(this.serverUrl, this.controlDatabase, `flotilla runner ${processTag()}`);
      const session: Session = { client, identity: await becomeRunner(client), alive: true };
      // A broken session releases the liveness lock: others may then take this process's work for dead.
      client.on('error', () => {
        session.alive = false;
      });
      client.on('end', () => {
        session.alive = false;
      });
      return session;
    })();
    return this.session;
  }
}
