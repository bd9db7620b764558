import { FlotillaError } from './errors.js';

/** DNS's limit on a whole name. */
export const HOST_MAX = 253;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A host name as a client sent it in `Host`, checked and without its port:
 * lowercase ASCII labels of letters, digits and inner hyphens, at most 253
 * characters, no trailing dot. Anything else (uppercase, a trailing dot,
 * unicode, a bad port, 5,000 characters) is refused, never normalized: a host
 * is compared as written, so no two spellings can reach one tenant's data.
 * Returns undefined for an IP literal (it names no tenant).
 */
export function parseHost(raw: string): string | undefined {
  const { host, port } = splitPort(raw);
  if (port !== undefined && !/^[1-9]\d{0,4}$/.test(port)) refuse(raw, 'its port is not a number from 1 to 65535');
  if (port !== undefined && Number(port) > 65535) refuse(raw, 'its port is above 65535');
  if (host.startsWith('[')) return undefined;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return undefined;
  assertHostName(host);
  return host;
}

/** A host name as stored in the domains table: the same rule as parseHost, no port. */
export function assertHostName(host: string): void {
  if (host.length === 0) refuse(host, 'it is empty');
  if (host.length > HOST_MAX) refuse(host, `it is ${host.length} characters long (at most ${HOST_MAX})`);
  if (/[^\x21-\x7e]/.test(host)) refuse(host, 'it holds characters other than ASCII letters, digits, "-" and "." (write an international name in its xn-- form)');
  if (host !== host.toLowerCase()) refuse(host, `it holds uppercase letters (write ${JSON.stringify(host.toLowerCase())})`);
  if (host.endsWith('.')) refuse(host, `it ends with "." (write ${JSON.stringify(host.replace(/\.+$/, ''))})`);
  if (!host.split('.').every((label) => LABEL.test(label))) refuse(host, 'each of its dot-separated parts must be 1 to 63 letters, digits or inner "-"');
}

function splitPort(raw: string): { host: string; port?: string } {
  if (raw.startsWith('[')) {
    const end = raw.indexOf(']');
    if (end < 0) refuse(raw, 'it opens "[" without closing it');
    const rest = raw.slice(end + 1);
    if (rest === '') return { host: raw };
    if (!rest.startsWith(':')) refuse(raw, 'it has text after "]"');
    return { host: raw.slice(0, end + 1), port: rest.slice(1) };
  }
  const colon = raw.indexOf(':');
  return colon < 0 ? { host: raw } : { host: raw.slice(0, colon), port: raw.slice(colon + 1) };
}

function refuse(host: string, reason: string): never {
  const shown = host.length > 80 ? `${host.slice(0, 80)}…` : host;
  throw new FlotillaError('FLO_SLUG_INVALID', `Host ${JSON.stringify(shown)} is not a valid host name: ${reason}.`, {
    hint: 'Send a host name of lowercase letters, digits, "-" and "." (a tenant is found by its subdomain or a registered domain).',
    meta: { host: shown },
  });
}
