import { FlotillaError } from '../core/errors.js';
import { parseHost } from '../core/host.js';
import { SLUG_MAX, SLUG_PATTERN } from '../core/slug.js';
import type { TenantSource } from './context.js';

/** What a resolver may read of a request, whatever the framework. */
export interface RequestInfo {
  /** The Host header as received (with its port). */
  readonly host: string | undefined;
  /** How many Host headers the request carried, where the framework tells (more than one is refused). */
  readonly hostCount?: number;
  /** The request target: path and query string, as received. */
  readonly url: string;
  header(name: string): string | undefined;
}

export type ResolverName = 'subdomain' | 'domain' | 'header' | 'query' | 'path' | 'custom';

export interface ResolutionOptions {
  /** The sources consulted, in order (default: subdomain, domain, path, header, query, then custom when given). */
  readonly order?: readonly ResolverName[];
  /** Base domains whose first label is the slug: `paris.example.com` (default: `localhost` alone, for development). */
  readonly baseDomains?: readonly string[];
  /** The header naming the tenant (default `X-Tenant-ID`). */
  readonly header?: string;
  /** The query parameter naming the tenant (default `tenant`). */
  readonly query?: string;
  /** The path prefix before the slug: `/t/paris/loans` → tenant paris, route `/loans` (default `/t/`). */
  readonly pathPrefix?: string;
  /** Your own resolver: a slug, or undefined when the request does not say. */
  readonly custom?: (request: RequestInfo) => string | undefined | Promise<string | undefined>;
  /** When sources name different tenants: refuse with 400 (default), or take the first in order. */
  readonly onConflict?: 'refuse' | 'first';
  /** The tenant for a request that names none; without it such a request gets 400. */
  readonly fallback?: string;
}

/** Who the request is for, and the route without a tenant path prefix. */
export interface Resolved {
  readonly slug: string;
  readonly source: TenantSource;
  /** The request target with `/t/<slug>` removed, when the path named the tenant. */
  readonly url?: string;
}

const URL_MAX = 8_192;

/** A tenant named by the request, checked before any lookup: hostile text never reaches SQL or a path. */
export function checkSlug(value: string, source: TenantSource): string {
  if (value.length >= 2 && value.length <= SLUG_MAX && SLUG_PATTERN.test(value)) return value;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  throw new FlotillaError('FLO_SLUG_INVALID', `The ${source} names no valid tenant: ${JSON.stringify(shown)}.`, {
    hint: 'A tenant slug is 2 to 41 lowercase letters, digits and single "-".',
    meta: { slug: shown },
  });
}

/**
 * Finds the tenant a request names. Every enabled source is read, so that two
 * naming different tenants are caught; the first in order wins when they agree
 * (or when told to take the first). Lookups by custom domain go through
 * `domainSlug`, given a host already checked.
 */
export class Resolver {
  private readonly order: readonly ResolverName[];
  private readonly baseDomains: readonly string[];
  private readonly header: string;
  private readonly query: string;
  private readonly pathPrefix: string;

  constructor(
    private readonly options: ResolutionOptions,
    private readonly domainSlug: (host: string) => Promise<string | undefined>,
  ) {
    this.order = options.order ?? ['subdomain', 'domain', 'path', 'header', 'query', ...(options.custom ? (['custom'] as const) : [])];
    if (this.order.includes('custom') && !options.custom) {
      throw new FlotillaError('FLO_USAGE', 'resolve.order lists "custom" but no resolve.custom function is given.', {
        hint: 'Give resolve.custom, or remove "custom" from resolve.order.',
      });
    }
    this.baseDomains = (options.baseDomains ?? ['localhost']).map((d) => d.toLowerCase().replace(/^\.+|\.+$/g, ''));
    this.header = (options.header ?? 'x-tenant-id').toLowerCase();
    this.query = options.query ?? 'tenant';
    this.pathPrefix = `/${(options.pathPrefix ?? '/t/').replace(/^\/+|\/+$/g, '')}/`;
  }

  async resolve(request: RequestInfo): Promise<Resolved> {
    if (request.url.length > URL_MAX) throw invalid(`The request target is ${request.url.length} characters long (at most ${URL_MAX}).`);
    // Two Host headers: proxies and this server could each take another one (RFC 9112 requires a 400).
    if ((request.hostCount ?? 1) > 1) throw invalid(`The request has ${request.hostCount} Host headers.`);
    // An absolute-form target (`GET http://lyon.example.com/`) names a host of its own, which proxies would follow: refused.
    if (!request.url.startsWith('/')) throw invalid('The request target must be a path (origin-form), not an absolute URL.');
    const found: Resolved[] = [];
    for (const name of this.order) {
      const hit = await this.read(name, request);
      if (hit && (this.options.onConflict === 'first' ? found.length === 0 : true)) found.push(hit);
    }
    const slugs = [...new Set(found.map((f) => f.slug))];
    if (slugs.length > 1) {
      throw new FlotillaError('FLO_TENANT_AMBIGUOUS', `The request names more than one tenant: ${found.map((f) => `${f.source} ${f.slug}`).join(', ')}.`, {
        hint: 'Name one tenant per request (or set resolve.onConflict to "first" to take the first source in resolve.order).',
        meta: { sources: found.map((f) => f.source) },
      });
    }
    const first = found[0];
    if (first) return { ...first, url: found.find((f) => f.url !== undefined)?.url };
    if (this.options.fallback) return { slug: checkSlug(this.options.fallback, 'fallback'), source: 'fallback' };
    throw new FlotillaError('FLO_TENANT_UNRESOLVED', 'The request names no tenant.', {
      hint: `Name it by subdomain (<tenant>.${this.baseDomains[0] ?? 'example.com'}), a registered domain, the ${this.header} header, ?${this.query}=<tenant>, or ${this.pathPrefix}<tenant>/.`,
    });
  }

  /**
   * The request's host, checked. A malformed one under a base domain is refused
   * (400); any other malformed one (an internal name such as `app_backend`)
   * names no tenant, and is never looked up.
   */
  private host(request: RequestInfo): string | undefined {
    if (request.host === undefined || request.host === '') return undefined;
    try {
      return parseHost(request.host);
    } catch (error) {
      const loose = request.host
        .toLowerCase()
        .replace(/^([^[][^:]*):.*$/, '$1')
        .replace(/\.+$/, '');
      if (this.baseDomains.some((base) => loose === base || loose.endsWith(`.${base}`))) throw error;
      return undefined;
    }
  }

  private async read(name: ResolverName, request: RequestInfo): Promise<Resolved | undefined> {
    switch (name) {
      case 'subdomain': {
        const host = this.host(request);
        if (!host) return undefined;
        for (const base of this.baseDomains) {
          if (!host.endsWith(`.${base}`)) continue;
          const label = host.slice(0, -base.length - 1);
          // Only the first label below the base: a.b.example.com names no tenant by subdomain.
          if (label.includes('.')) return undefined;
          return { slug: checkSlug(label, 'subdomain'), source: 'subdomain' };
        }
        return undefined;
      }
      case 'domain': {
        const host = this.host(request);
        if (!host || this.baseDomains.some((base) => host === base || host.endsWith(`.${base}`))) return undefined;
        const slug = await this.domainSlug(host);
        return slug ? { slug, source: 'domain' } : undefined;
      }
      case 'header': {
        const value = request.header(this.header);
        return value === undefined || value === '' ? undefined : { slug: checkSlug(value, 'header'), source: 'header' };
      }
      case 'query': {
        const value = queryParam(request.url, this.query);
        return value === undefined || value === '' ? undefined : { slug: checkSlug(value, 'query'), source: 'query' };
      }
      case 'path': {
        if (!request.url.startsWith(this.pathPrefix)) return undefined;
        const rest = request.url.slice(this.pathPrefix.length);
        const end = rest.search(/[/?#]/);
        const raw = end < 0 ? rest : rest.slice(0, end);
        const slug = checkSlug(raw, 'path');
        const tail = end < 0 ? '' : rest.slice(end);
        return { slug, source: 'path', url: tail.startsWith('/') ? tail : `/${tail}` };
      }
      case 'custom': {
        const value: unknown = await this.options.custom!(request);
        if (value === undefined || value === null || value === '') return undefined;
        if (typeof value !== 'string')
          throw new FlotillaError('FLO_USAGE', `resolve.custom returned ${typeof value}, not a slug.`, { hint: 'Return a slug, or undefined when the request names no tenant.' });
        return { slug: checkSlug(value, 'custom'), source: 'custom' };
      }
    }
  }
}

/** One query parameter, decoded; refused when its value is not valid percent-encoding or it is given twice differently. */
function queryParam(url: string, name: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const values = new Set<string>();
  // Only this parameter's own pairs are decoded: a malformed escape elsewhere (`?q=50%`) is the app's business.
  for (const pair of url
    .slice(q + 1)
    .split('#')[0]!
    .split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (decodeQuery(key) !== name) continue;
    values.add(decodeQuery(eq < 0 ? '' : pair.slice(eq + 1)));
  }
  if (values.size > 1) throw invalid(`The query string names ${values.size} tenants in ${name}.`);
  return [...values][0];
}

function decodeQuery(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw invalid('The tenant query parameter is not valid percent-encoding.');
  }
}

function invalid(message: string): FlotillaError<'FLO_SLUG_INVALID'> {
  return new FlotillaError('FLO_SLUG_INVALID', message, { hint: 'Send a well-formed request that names one tenant.' });
}
