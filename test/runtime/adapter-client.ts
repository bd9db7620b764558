import { request as httpRequest } from 'node:http';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: a JSON answer, checked by each assertion.
  readonly body: any;
}

export interface CallOptions {
  readonly host?: string;
  readonly headers?: Record<string, string>;
  readonly method?: string;
  /** A JSON body. */
  readonly json?: unknown;
  /** Sends the body's first half at once, and the rest when this settles. */
  readonly restAfter?: Promise<unknown>;
}

/**
 * One HTTP request to 127.0.0.1 through node:http, which (unlike fetch) may
 * send any Host header: `paris.localhost:<port>` names a tenant by subdomain.
 */
export function call(port: number, path: string, options: CallOptions = {}): Promise<Answer> {
  const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = { host: options.host ?? `127.0.0.1:${port}`, ...options.headers };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: the test sees the text.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    if (payload === undefined || !options.restAfter) {
      req.end(payload);
    } else {
      const half = Math.floor(payload.length / 2);
      req.write(payload.slice(0, half));
      options.restAfter.then(() => req.end(payload.slice(half)), reject);
    }
  });
}
