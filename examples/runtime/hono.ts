import { once } from 'node:events';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createRuntime, currentTenant } from 'flotilla/runtime';
import { tenantMiddleware, tenantPath } from 'flotilla/runtime/hono';

// GET /whoami as paris.localhost:3000, /t/paris/whoami, ?tenant=paris or with X-Tenant-ID: paris.
export async function start(databaseUrl: string, port = 3000, hostname = '127.0.0.1') {
  const runtime = await createRuntime({ databaseUrl });
  // Hono routes before any middleware: getPath routes /t/paris/whoami as /whoami.
  const app = new Hono({ getPath: tenantPath() });
  app.use(tenantMiddleware(runtime));
  app.get('/whoami', async (c) => {
    const { rows } = await runtime.db.query('SELECT slug FROM who');
    return c.json({ tenant: currentTenant().slug, who: rows[0]?.slug });
  });
  const server = serve({ fetch: app.fetch, port, hostname });
  await once(server, 'listening');
  return {
    server,
    async close() {
      server.close();
      await runtime.close();
    },
  };
}
