import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import exitHook from 'async-exit-hook';
import { FlotillaError } from '../core/errors.js';
import type { TenantRuntime } from '../runtime/runtime.js';
import { createRuntime } from '../runtime/runtime.js';
import type { DemoOptions, DemoResult, OpenDemo } from './demo.js';
import { openDemo } from './demo.js';

/** The sample app, shipped as JavaScript beside the compiled demo: examples/ is not compiled. */
const APP = new URL('../../examples/loans/app.js', import.meta.url);
const HOST = '127.0.0.1';

export interface ServeOptions extends DemoOptions {
  /** The port to listen on, on 127.0.0.1 (default 3000; 0 picks a free one). */
  readonly port?: number;
}

/** The demo's tenants, served by the sample loans app until `close()`. */
export interface DemoServing {
  readonly result: DemoResult;
  readonly port: number;
  /** One request per way of naming a tenant. */
  readonly urls: { readonly subdomain: string; readonly header: string; readonly query: string };
  /** Stops serving, then closes the tenant runtime and lets go of the server. */
  close(): Promise<void>;
}

type LoansApp = { createLoansApp(runtime: TenantRuntime): RequestListener };

/**
 * Runs the demo, then serves the sample loans app (`examples/loans/app.js`, on
 * the tenant runtime and its Express adapter) to its three tenants. The port
 * is taken first, so that a taken one fails before the demo runs; until the
 * app is ready it answers 503.
 */
export async function serveDemo(options: ServeOptions = {}): Promise<DemoServing> {
  const { createLoansApp } = await loadApp();
  let handler: RequestListener = starting;
  const server = createServer((req, res) => handler(req, res));
  const port = await listen(server, options.port ?? 3000);
  let demo: OpenDemo | undefined;
  let runtime: TenantRuntime | undefined;
  const close = async () => {
    await stop(server);
    await runtime?.close();
    await demo?.release();
  };
  try {
    demo = await openDemo(options);
    runtime = await createRuntime({ databaseUrl: demo.controlUrl, applicationName: 'flotilla demo' });
    handler = createLoansApp(runtime);
  } catch (error) {
    await close();
    throw error;
  }
  const urls = {
    subdomain: `http://paris.localhost:${port}/summary`,
    header: `http://${HOST}:${port}/summary`,
    query: `http://${HOST}:${port}/summary?tenant=nice`,
  };
  return { result: demo.result, port, urls, close };
}

/**
 * The first SIGINT or SIGTERM. Takes them over from the embedded server's exit
 * hook (installed with it), which would stop PostgreSQL under the open
 * sessions and exit with 130 or 143: the caller shuts down in order instead.
 * A second signal, with no listener left, ends the process as usual.
 */
export function shutdownSignal(): Promise<NodeJS.Signals> {
  for (const signal of ['SIGINT', 'SIGTERM']) if (exitHook.hookedEvents().includes(signal)) exitHook.unhookEvent(signal);
  return new Promise((resolve) => {
    const once = (signal: NodeJS.Signals) => {
      process.off('SIGINT', once);
      process.off('SIGTERM', once);
      resolve(signal);
    };
    process.once('SIGINT', once);
    process.once('SIGTERM', once);
  });
}

async function loadApp(): Promise<LoansApp> {
  try {
    return (await import(APP.href)) as LoansApp;
  } catch (error) {
    // The app needs Express, an optional peer dependency of Flotilla.
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && /'express'/.test(String((error as Error).message))) {
      throw new FlotillaError('FLO_USAGE', 'flotilla demo --serve runs the sample loans app on Express, which is not installed.', {
        hint: 'Run npm install express, then flotilla demo --serve again.',
        meta: { missing: 'express' },
        cause: error,
      });
    }
    throw error;
  }
}

function starting(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' });
  res.end(JSON.stringify({ error: { code: 'FLO_TENANT_UNAVAILABLE', message: 'The demo is starting.' } }));
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') return reject(error);
      reject(
        new FlotillaError('FLO_USAGE', `Port ${port} on ${HOST} cannot be used (${error.code}).`, {
          hint: 'Choose another with --port, or --port 0 for a free one.',
          meta: { port },
          cause: error,
        }),
      );
    });
    server.listen(port, HOST, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Stops accepting connections and waits for the requests under way; idle keep-alive connections are closed. */
function stop(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeIdleConnections();
  });
}
