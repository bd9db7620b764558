import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerFor, currentTenant, nodeRequestInfo } from '../../src/runtime/index.js';
import type { TenantRuntime } from '../../src/runtime/index.js';

/** What the app answers for a tenant's request: who the scope says it is, and whose row its query read. */
export interface WhoAnswer {
  readonly tenant: string;
  readonly who: string;
  /** The route the app saw (a `/t/<slug>` prefix removed). */
  readonly url: string;
}

/**
 * A small app as a user writes one on node:http: the runtime finds the
 * tenant, the handler waits a random moment, then reads `who` either through
 * `runtime.db` or through the pool's callback API (node-postgres #2533: the
 * callback may run in the context of whoever opened the connection), waits
 * again, and answers with the current tenant and the row it read.
 * `x-style: pool` picks the callback API. `GET /_stats` answers the runtime's counters.
 */
export function whoApp(runtime: TenantRuntime): RequestListener {
  return (req, res) => {
    if (req.url === '/_stats') return send(res, 200, {}, runtime.stats());
    runtime.admit(nodeRequestInfo(req, req.url ?? '/')).then(
      ({ tenant, url }) => runtime.within(tenant, () => serve(runtime, req, res, url ?? req.url ?? '/')),
      (error: unknown) => fail(res, error),
    );
  };
}

function serve(runtime: TenantRuntime, req: IncomingMessage, res: ServerResponse, url: string): void {
  const answer = (who: string) => send(res, 200, {}, { tenant: currentTenant().slug, who, url } satisfies WhoAnswer);
  setTimeout(() => {
    if (req.headers['x-style'] === 'pool') {
      runtime.pool().connect((error, client, release) => {
        if (error || !client) return fail(res, error);
        client.query<{ slug: string }>('SELECT slug FROM who', (queryError: Error | undefined, result: { rows: { slug: string }[] }) => {
          setTimeout(() => {
            release(queryError);
            if (queryError) fail(res, queryError);
            else answer(result.rows[0]!.slug);
          }, jitter());
        });
      });
      return;
    }
    runtime.db.query<{ slug: string }>('SELECT slug FROM who').then(
      (result) => setTimeout(() => answer(result.rows[0]!.slug), jitter()),
      (error: unknown) => fail(res, error),
    );
  }, jitter());
}

/** 0 to 5 ms: enough for requests of both tenants to overtake each other. */
function jitter(): number {
  return Math.floor(Math.random() * 6);
}

function fail(res: ServerResponse, error: unknown): void {
  const answer = answerFor(error);
  send(res, answer.status, answer.headers, answer.body);
}

function send(res: ServerResponse, status: number, headers: Readonly<Record<string, string>>, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** whoApp on 127.0.0.1, on a free port, in this process. */
export async function serveWho(runtime: TenantRuntime): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer(whoApp(runtime));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
