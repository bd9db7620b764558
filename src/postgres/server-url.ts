import { FlotillaError } from '../core/errors.js';

/** A PostgreSQL server URL with the database part replaced; every connection goes through here. */
export function withDatabase(url: string, database: string): string {
  const parsed = parseServerUrl(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

export function databaseOf(url: string): string | undefined {
  const path = decodeURIComponent(parseServerUrl(url).pathname.replace(/^\//, ''));
  return path === '' ? undefined : path;
}

/** The database a server's URL names, where Flotilla connects to create, copy and drop databases; `postgres` when it names none. */
export function adminDatabase(url: string): string {
  return databaseOf(url) ?? 'postgres';
}

export function parseServerUrl(url: string): URL {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['postgres:', 'postgresql:'].includes(parsed.protocol) || parsed.hostname === '') {
    throw new FlotillaError('FLO_URL_INVALID', `Invalid PostgreSQL URL ${JSON.stringify(redactUrl(url))}.`, {
      hint: 'Write it as postgres://user[:password]@host[:port]/database, for example postgres://postgres@127.0.0.1:5432/flotilla.',
      meta: { url: redactUrl(url) },
    });
  }
  return parsed;
}

/** The URL without its password, for output and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}
