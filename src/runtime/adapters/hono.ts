import type { MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { getPath } from 'hono/utils/url';
import { answerFor } from '../answer.js';
import type { RequestInfo } from '../resolution.js';
import type { Admitted, TenantRuntime } from '../runtime.js';

/**
 * Hono 4 middleware: resolves the request's tenant and runs the rest of the
 * chain in its scope; answers 400/403/404/410/503 as JSON itself when the
 * tenant cannot be served. A `/t/<slug>` path prefix names the tenant, but
 * Hono routes before any middleware runs: strip it with `getPath: tenantPath()`.
 */
export function tenantMiddleware(runtime: TenantRuntime): MiddlewareHandler {
  return async function tenant(c, next) {
    let admitted: Admitted;
    try {
      admitted = await runtime.admit(requestInfo(c.req.raw));
    } catch (error) {
      const answer = answerFor(error);
      return c.body(JSON.stringify(answer.body), answer.status as ContentfulStatusCode, answer.headers);
    }
    await runtime.within(admitted.tenant, () => next());
  };
}

/**
 * The `getPath` option that routes `/t/<slug>/orders` as `/orders`:
 * `new Hono({ getPath: tenantPath() })`. Give it the runtime's
 * `resolve.pathPrefix` when that is not `/t/`. The middleware still resolves
 * the tenant from the URL as received (`c.req.url`); `c.req.path` has no prefix.
 */
export function tenantPath(options: { pathPrefix?: string } = {}): (request: Request) => string {
  const prefix = `/${(options.pathPrefix ?? '/t/').replace(/^\/+|\/+$/g, '')}/`;
  return function tenantPath(request: Request): string {
    const path = getPath(request);
    if (!path.startsWith(prefix)) return path;
    const slash = path.indexOf('/', prefix.length);
    return slash < 0 ? '/' : path.slice(slash);
  };
}

function requestInfo(request: Request): RequestInfo {
  const url = request.url;
  return {
    host: request.headers.get('host') ?? undefined,
    // The request target as received: the path (undecoded) and the query string.
    url: url.slice(url.indexOf('/', url.indexOf(':') + 3)),
    header: (name) => request.headers.get(name) ?? undefined,
  };
}
