import http from 'node:http';
import { connect } from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  // biome-ignore lint/suspicious/noExplicitAny: answers are JSON the tests read by name.
  readonly body: any;
}

/** A GET on 127.0.0.1 through a keep-alive agent. */
export function get(port: number, path: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parse(text) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * A request written byte for byte on its own connection: for Host headers a
 * client library refuses to send (unicode, 5,000 characters, a bad port).
 */
export function raw(port: number, request: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine?.split(' ')[1] ?? 0), headers, body: parse(text.slice(split + 4)) });
    });
    socket.write(request);
  });
}

/** A GET request as raw bytes, closing the connection after the answer. */
export function rawGet(path: string, headers: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`GET ${path} HTTP/1.1\r\n`)];
  for (const [name, value] of Object.entries(headers)) parts.push(Buffer.from(`${name}: `), Buffer.from(value), Buffer.from('\r\n'));
  parts.push(Buffer.from('Connection: close\r\n\r\n'));
  return Buffer.concat(parts);
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Resolves when `check` returns true, polling every `everyMs`; the time it took, or throws after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, options: { everyMs?: number; timeoutMs?: number; what?: string } = {}): Promise<number> {
  const start = performance.now();
  const deadline = start + (options.timeoutMs ?? 5_000);
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() > deadline) throw new Error(`Timed out after ${options.timeoutMs ?? 5_000} ms waiting for ${options.what ?? 'a condition'}.`);
    await new Promise((r) => setTimeout(r, options.everyMs ?? 20));
  }
}
