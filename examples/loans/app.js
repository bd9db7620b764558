// The sample loans app: one Express codebase serving every lending circle, each
// from its own database or schema. `flotilla demo --serve` runs it on the
// demo's three tenants.
//
// Plain JavaScript, so that it runs as shipped, with no build step; it imports
// Flotilla by its package name, as an app of yours would.
import express from 'express';
import { answerFor } from 'flotilla/runtime';
import { tenantMiddleware } from 'flotilla/runtime/express';

/**
 * The app, on a tenant runtime (`createRuntime` of `flotilla/runtime`): every
 * route runs in the scope of the tenant the request names, and
 * `runtime.db` is that tenant's database.
 *
 * @param {import('flotilla/runtime').TenantRuntime} runtime
 * @returns {import('express').Express}
 */
export function createLoansApp(runtime) {
  const app = express();
  app.disable('x-powered-by');
  app.use(tenantMiddleware(runtime));

  app.get('/summary', async (_req, res) => {
    const { rows } = await runtime.db.query(
      'SELECT (SELECT count(*) FROM members)::int AS members, (SELECT count(*) FROM loans)::int AS loans, (SELECT count(*) FROM payments)::int AS payments',
    );
    res.json({ tenant: runtime.tenant().slug, ...rows[0] });
  });

  app.get('/members', async (_req, res) => {
    const { rows } = await runtime.db.query('SELECT id, full_name AS "fullName", email FROM members ORDER BY id LIMIT 100');
    res.json({ tenant: runtime.tenant().slug, members: rows });
  });

  // A failed query answers JSON with a stable code, as the middleware's own refusals do.
  app.use(answerError);
  return app;
}

/**
 * Express knows an error handler by its four parameters.
 *
 * @param {unknown} error
 * @param {import('express').Request} _req
 * @param {import('express').Response} res
 * @param {import('express').NextFunction} _next
 */
function answerError(error, _req, res, _next) {
  const answer = answerFor(error);
  // The client gets the code only; the cause stays in the server's log.
  if (answer.status >= 500) console.error(error);
  res.status(answer.status).set(answer.headers).send(JSON.stringify(answer.body));
}
