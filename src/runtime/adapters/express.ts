import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { answerFor } from '../answer.js';
import { nodeRequestInfo } from '../node-request.js';
import type { Admitted, TenantRuntime } from '../runtime.js';

/**
 * Express 5 middleware: resolves the request's tenant and runs the rest of
 * the chain in its scope; answers 400/403/404/410/503 as JSON itself when the
 * tenant cannot be served. A `/t/<slug>` path prefix is removed from `req.url`
 * before the routes after it match (`req.originalUrl` keeps it).
 */
export function tenantMiddleware(runtime: TenantRuntime): RequestHandler {
  return async function tenant(req: Request, res: Response, next: NextFunction): Promise<void> {
    let admitted: Admitted;
    try {
      admitted = await runtime.admit(nodeRequestInfo(req, req.url));
    } catch (error) {
      const answer = answerFor(error);
      res.status(answer.status).set(answer.headers).send(JSON.stringify(answer.body));
      return;
    }
    if (admitted.url !== undefined) req.url = admitted.url;
    runtime.within(admitted.tenant, () => next());
  };
}
