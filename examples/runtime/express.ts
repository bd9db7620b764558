import { once } from 'node:events';
import express from 'express';
import { createRuntime, currentTenant } from 'flotilla/runtime';
import { tenantMiddleware } from 'flotilla/runtime/express';

// GET /whoami as paris.localhost:3000, /t/paris/whoami, ?tenant=paris or with X-Tenant-ID: paris.
export async function start(databaseUrl: string, port = 3000, host = '127.0.0.1') {
  const runtime = await createRuntime({ databaseUrl });
  const app = express();
  app.use(tenantMiddleware(runtime));
  app.get('/whoami', async (_req, res) => {
    const { rows } = await runtime.db.query('SELECT slug FROM who');
    res.json({ tenant: currentTenant().slug, who: rows[0]?.slug });
  });
  const server = app.listen(port, host);
  await once(server, 'listening');
  return {
    server,
    async close() {
      server.close();
      await runtime.close();
    },
  };
}
