import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { answerFor } from '../answer.js';
import type { RequestInfo } from '../resolution.js';
import type { TenantRuntime } from '../runtime.js';

/**
 * Express 5 middleware: resolves the request's tenant and runs the rest of
 * the chain in its scope; answers 400/403/404/410/503 as JSON itself when the
 * tenant cannot be served. A `/t/<slug>` path prefix is removed before routing.
 */
export function tenantMiddleware(runtime: TenantRuntime): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    runtime.admit(requestInfo(req)).then(
      ({ tenant, url }) => {
        if (url !== undefined) req.url = url;
        runtime.within(tenant, () => next());
      },
      (error: unknown) => {
        const answer = answerFor(error);
        res.status(answer.status).set(answer.headers).send(JSON.stringify(answer.body));
      },
    );
  };
}

function requestInfo(req: Request): RequestInfo {
  return {
    host: req.headers.host,
    url: req.url,
    header: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(',') : value;
    },
  };
}
