import pg from 'pg';
import { FlotillaError, codesOf, isConnectionError } from '../core/errors.js';
import { redactUrl, withDatabase } from './server-url.js';

export type Client = pg.Client;

/** Opens one session to a database of a server; a failure names the server and what to check. */
export async function connect(serverUrl: string, database: string, applicationName = 'flotilla'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, database), application_name: applicationName });
  // An idle session whose server goes away emits 'error'; the next query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => undefined);
    throw connectionError(cause, serverUrl, database);
  }
  return client;
}

/**
 * Every failure to open a session is FLO_CONNECTION_FAILED (family `unavailable`);
 * the hint says what to check: the network and server (`isConnectionError`: refused,
 * reset, timed out, shutting down), the database, or the credentials.
 */
export function connectionError(cause: unknown, serverUrl: string, database: string): FlotillaError<'FLO_CONNECTION_FAILED'> {
  const reason = cause instanceof Error ? cause.message || String((cause as { code?: unknown }).code ?? cause) : String(cause);
  const { sqlstate, errno } = codesOf(cause);
  return new FlotillaError('FLO_CONNECTION_FAILED', `Cannot connect to database "${database}" on ${redactUrl(serverUrl)}: ${reason}`, {
    hint: connectionHint(cause, sqlstate),
    meta: { server: redactUrl(serverUrl), database, reason, sqlstate, errno },
    cause,
  });
}

function connectionHint(cause: unknown, sqlstate: string | null): string {
  if (sqlstate === '3D000') return 'The database does not exist: check the tenant registry (`flotilla tenant show <slug>`) or recreate the tenant.';
  if (sqlstate?.startsWith('28')) return 'The server refused the user or password: check them (FLOTILLA_DATABASE_URL or `flotilla server list`).';
  if (isConnectionError(cause)) return 'The server cannot be reached: check that it is running and accepts connections at that host and port, then try again.';
  return 'Check that the server is running and the URL, user and password are right (FLOTILLA_DATABASE_URL or `flotilla server list`).';
}

/** Runs `fn` on a short-lived session and always closes it. */
export async function withClient<T>(serverUrl: string, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(serverUrl, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
