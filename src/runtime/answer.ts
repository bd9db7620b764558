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
  if (typeof meta.retryAfter === 'number') headers['retry-after'] = String(Math.max(1, Math.ceil(meta.retryAfter)));
  // A bug's own message stays in the server's logs: the client gets the code.
  const internal = error.family === 'internal' || error.family === 'config';
  const message = internal ? 'The server failed to answer this request.' : error.message;
  const tenant = typeof meta.tenant === 'string' ? meta.tenant : undefined;
  return {
    status,
    headers,
    body: { error: { code: error.code, message, ...(error.hint && !internal ? { hint: error.hint } : {}), ...(tenant ? { tenant } : {}) } },
  };
}
