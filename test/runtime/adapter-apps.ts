import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { tenantMiddleware as expressTenant } from '../../src/runtime/adapters/express.js';
import { tenantPlugin, tenantRewriteUrl } from '../../src/runtime/adapters/fastify.js';
import { tenantMiddleware as honoTenant, tenantPath } from '../../src/runtime/adapters/hono.js';
import type { TenantRuntime } from '../../src/runtime/index.js';
import { currentTenant } from '../../src/runtime/index.js';

/** A server a test talks to, and how to stop it. */
export interface Running {
  readonly port: number;
  close(): Promise<void>;
}

export type Framework = 'express' | 'fastify' | 'hono';

/**
 * Says when the app is about to read a request's body (by its `x-wait` header):
 * a client sending the rest of the body only then makes it arrive from the
 * socket, in the socket's async context, not the request's.
 */
export const readingBody = new EventEmitter();

function reading(id: string | string[] | undefined): void {
  if (typeof id === 'string') readingBody.emit(id);
}

/**
 * The same small app on each framework. Every route reads the current tenant
 * where a scope is easily lost: after a query (`/whoami`, with the route the
 * framework matched), in a timer (`/timer`), in a stream's events (`/stream`),
 * after the request body was read (`POST /echo`, sent in two parts by
 * a client using `readingBody`).
 */
export const APPS: Record<Framework, (runtime: TenantRuntime) => Promise<Running>> = {
  async express(runtime) {
    const app = express();
    app.use(expressTenant(runtime));
    app.use((req, _res, next) => {
      reading(req.headers['x-wait']);
      next();
    });
    app.use(express.json());
    app.get('/whoami', async (req, res) => {
      res.json(await whoami(runtime, req.path));
    });
    app.get('/timer', async (_req, res) => {
      res.json(await inTimer());
    });
    app.get('/stream', async (_req, res) => {
      res.json(await inStream());
    });
    app.post('/echo', (req, res) => {
      res.json({ tenant: currentTenant().slug, body: req.body });
    });
    return listening(app.listen(0, '127.0.0.1'));
  },

  async fastify(runtime) {
    const app = Fastify({ rewriteUrl: tenantRewriteUrl() });
    await app.register(tenantPlugin, { runtime });
    app.addHook('preParsing', (request, _reply, payload, done) => {
      reading(request.headers['x-wait']);
      done(null, payload);
    });
    app.get('/whoami', async (request) => whoami(runtime, request.url.split('?')[0]!));
    app.get('/timer', async () => inTimer());
    app.get('/stream', async () => inStream());
    app.post('/echo', async (request) => ({ tenant: currentTenant().slug, body: request.body }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  },

  async hono(runtime) {
    const app = new Hono({ getPath: tenantPath() });
    app.use(honoTenant(runtime));
    app.use(async (c, next) => {
      reading(c.req.header('x-wait'));
      await next();
    });
    app.get('/whoami', async (c) => c.json(await whoami(runtime, c.req.path)));
    app.get('/timer', async (c) => c.json(await inTimer()));
    app.get('/stream', async (c) => c.json(await inStream()));
    app.post('/echo', async (c) => {
      const body: unknown = await c.req.json();
      return c.json({ tenant: currentTenant().slug, body });
    });
    return listening(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
  },
};

async function whoami(runtime: TenantRuntime, path: string) {
  const { rows } = await runtime.db.query<{ slug: string }>('SELECT slug FROM who');
  const tenant = currentTenant();
  return { tenant: tenant.slug, source: tenant.source, who: rows[0]?.slug, path };
}

function inTimer(): Promise<{ tenant: string }> {
  return new Promise((resolve, reject) => {
    setTimeout(() => {
      try {
        resolve({ tenant: currentTenant().slug });
      } catch (error) {
        reject(error);
      }
    }, 5);
  });
}

function inStream(): Promise<{ tenants: string[] }> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const stream = new Readable({ read() {} });
    stream.on('data', () => {
      try {
        seen.push(currentTenant().slug);
      } catch (error) {
        reject(error);
      }
    });
    stream.on('end', () => resolve({ tenants: seen }));
    // Pushed from a later turn of the event loop, as a real source would.
    setImmediate(() => {
      stream.push('a');
      setImmediate(() => {
        stream.push('b');
        stream.push(null);
      });
    });
  });
}

async function listening(server: Server): Promise<Running> {
  if (!server.listening) await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
