/**
 * Secrets never leave Flotilla: every text it prints, records or throws passes
 * through here. A password can sit in a URL's user-info, in a `password=` query
 * parameter or keyword, and a URL a user mistyped may not parse at all, so this
 * works on text, not on parsed URLs, and errs on the side of hiding more.
 */
const MASK = '***';

/** `scheme://user:secret@` — up to the last `@` of the run, since a password may hold an unencoded `@` or `/`. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/?#]*):(\S*)@/gi;
/** `password=secret` in a query string or a keyword/value connection string (libpq's `sslpassword` too). */
const PASSWORD_PARAMETER = /\b((?:ssl)?password|pgpassword)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^&\s'",;)]*)/gi;

export function redactSecrets(text: string): string {
  if (!text.includes('@') && !/password/i.test(text)) return text;
  return text.replace(USERINFO, (_, scheme: string, user: string) => `${scheme}${user}:${MASK}@`).replace(PASSWORD_PARAMETER, (_, key: string, eq: string) => `${key}${eq}${MASK}`);
}

/**
 * A connection URL as it may be shown: its password (user-info or parameter)
 * masked, whether or not it parses. A text that does not parse as a URL is
 * treated as one: whatever stands before its last `@` after a `:` is hidden.
 */
export function redactUrl(url: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed && parsed.host !== '') {
    if (parsed.password) parsed.password = MASK;
    for (const key of [...parsed.searchParams.keys()]) if (/password/i.test(key)) parsed.searchParams.set(key, MASK);
    return redactSecrets(parsed.toString());
  }
  const masked = redactSecrets(url);
  const at = masked.lastIndexOf('@');
  if (at === -1) return masked;
  const start = masked.indexOf('://') === -1 ? 0 : masked.indexOf('://') + 3;
  const colon = masked.indexOf(':', start);
  return colon !== -1 && colon < at ? `${masked.slice(0, colon + 1)}${MASK}${masked.slice(at)}` : masked;
}

/** Every string inside a JSON-like value redacted (keys that look secret masked whole). */
export function redactValue(value: unknown, key = ''): unknown {
  if (/password|passwd|secret|token|credential/i.test(key) && value !== null && value !== undefined) return MASK;
  if (typeof value === 'string') return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? redactUrl(value) : redactSecrets(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item));
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, redactValue(v, k)]),
    );
  return value;
}
