import type { IncomingMessage } from 'node:http';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { answerFor } from '../answer.js';
import { nodeRequestInfo } from '../node-request.js';
import type { TenantRuntime } from '../runtime.js';

export interface TenantPluginOptions {
  readonly runtime: TenantRuntime;
}

/**
 * Fastify 5 plugin: resolves each request's tenant in an onRequest hook and
 * runs the rest of the request in its scope; answers 400/403/404/410/503 as
 * JSON itself when the tenant cannot be served. `app.register(tenantPlugin, { runtime })`
 * covers the whole app: the plugin is not encapsulated. A `/t/<slug>` path prefix
 * names the tenant, but Fastify routes before any hook runs: strip it with
 * `rewriteUrl: tenantRewriteUrl()`.
 */
const flotillaTenant: FastifyPluginCallback<TenantPluginOptions> = (app, { runtime }, done) => {
  // The later hooks, body parsing and handler run in the scope: Fastify's
  // content-type parser reads the body in the request's async context, not the socket's.
  app.addHook('onRequest', function tenant(request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    // Before a rewriteUrl removed the tenant's path prefix: the URL as received.
    runtime.admit(nodeRequestInfo(request.raw, request.originalUrl)).then(
      (admitted) => runtime.within(admitted.tenant, () => next()),
      (error: unknown) => {
        const answer = answerFor(error);
        reply.code(answer.status).headers(answer.headers).send(JSON.stringify(answer.body));
      },
    );
  });
  done();
};

export const tenantPlugin = Object.assign(flotillaTenant, {
  // What fastify-plugin sets: the hook applies to every route, not only to the plugin's own context.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'flotilla-tenant',
});

/**
 * The `rewriteUrl` server option that removes a `/t/<slug>` prefix before
 * Fastify routes: `Fastify({ rewriteUrl: tenantRewriteUrl() })`. Give it the
 * runtime's `resolve.pathPrefix` when that is not `/t/`. The plugin still
 * resolves the tenant from the URL as received (`request.originalUrl`).
 */
export function tenantRewriteUrl(options: { pathPrefix?: string } = {}): (req: IncomingMessage) => string {
  const prefix = `/${(options.pathPrefix ?? '/t/').replace(/^\/+|\/+$/g, '')}/`;
  return function rewriteUrl(req: IncomingMessage): string {
    const url = req.url ?? '/';
    if (!url.startsWith(prefix)) return url;
    const rest = url.slice(prefix.length);
    const end = rest.search(/[/?#]/);
    const tail = end < 0 ? '' : rest.slice(end);
    return tail.startsWith('/') ? tail : `/${tail}`;
  };
}
