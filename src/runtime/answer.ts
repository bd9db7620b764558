import { HTTP_STATUS_BY_FAMILY, toFlotillaError } from '../core/errors.js';

/** The HTTP answer for an error: the status of its family, JSON with its stable code, Retry-After when it says when. */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: { readonly code: string; readonly message: string; readonly hint?: string; readonly tenant?: string } };
}

export function answerFor(thrown: unknown): ErrorAnswer {
  const error = toFlotillaError(thrown);
  const status = HTTP_STATUS_BY_FAMILY[error.family];
  const meta = error.meta as Record<string, unknown>;
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
  // A database that cannot be reached is retried shortly; its address and the driver's words stay in the server's logs.
  const unreachable = error.code === 'FLO_CONNECTION_FAILED';
  const retryAfter = typeof meta.retryAfter === 'number' ? meta.retryAfter : unreachable ? 1 : undefined;
  if (retryAfter !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfter)));
  // A bug's own message stays in the server's logs: the client gets the code.
  const internal = error.family === 'internal' || error.family === 'config' || unreachable;
  const message = internal ? 'The server failed to answer this request.' : error.message;
  const tenant = typeof meta.tenant === 'string' ? meta.tenant : undefined;
  return {
    status,
    headers,
    body: { error: { code: error.code, message, ...(error.hint && !internal ? { hint: error.hint } : {}), ...(tenant ? { tenant } : {}) } },
  };
}
