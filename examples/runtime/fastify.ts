import Fastify from 'fastify';
import { createRuntime, currentTenant } from 'flotilla/runtime';
import { tenantPlugin, tenantRewriteUrl } from 'flotilla/runtime/fastify';

// GET /whoami as paris.localhost:3000, /t/paris/whoami, ?tenant=paris or with X-Tenant-ID: paris.
export async function start(databaseUrl: string, port = 3000, host = '127.0.0.1') {
  const runtime = await createRuntime({ databaseUrl });
  // Fastify routes before any hook: rewriteUrl routes /t/paris/whoami as /whoami.
  const app = Fastify({ rewriteUrl: tenantRewriteUrl() });
  await app.register(tenantPlugin, { runtime });
  app.get('/whoami', async () => {
    const { rows } = await runtime.db.query('SELECT slug FROM who');
    return { tenant: currentTenant().slug, who: rows[0]?.slug };
  });
  app.addHook('onClose', () => runtime.close());
  await app.listen({ port, host });
  return app; // app.server, app.close()
}
