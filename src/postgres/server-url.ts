import { FlotillaError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

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
      hint: 'Write it as postgres://, the user (and, after a colon, its password), @, the host (and, after a colon, its port), / and the database; for example postgres://postgres@127.0.0.1:5432/flotilla.',
      meta: { url: redactUrl(url) },
    });
  }
  return parsed;
}

export { redactUrl } from '../core/redact.js';

/**
 * A URL and its password apart: the password from the user-info or from a
 * `password=` parameter, the URL with neither (what may be stored and shown).
 */
export function splitPassword(url: string): { url: string; password: string | null } {
  const parsed = parseServerUrl(url);
  let password: string | null = parsed.password ? decodeURIComponent(parsed.password) : null;
  parsed.password = '';
  for (const key of [...parsed.searchParams.keys()]) {
    if (key.toLowerCase() !== 'password') continue;
    password ??= parsed.searchParams.get(key);
    parsed.searchParams.delete(key);
  }
  return { url: parsed.toString(), password };
}

/** The connection URL of a stored URL and its password. */
export function withPassword(url: string, password: string | null): string {
  if (!password) return url;
  const parsed = parseServerUrl(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}
