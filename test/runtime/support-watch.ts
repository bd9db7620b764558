import type http from 'node:http';
import type { Reply } from './support-http.js';
import { get } from './support-http.js';

/** A tenant polled every 20 ms by header until `end()`: every status it answered meanwhile. */
export function watch(port: number, slug: string, agent: http.Agent): { end(): Promise<number[]> } {
  let running = true;
  const statuses: number[] = [];
  const done = (async () => {
    while (running) {
      statuses.push((await get(port, '/who', { 'x-tenant-id': slug }, agent)).status);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async end() {
      running = false;
      await done;
      return statuses;
    },
  };
}

/** Polls a tenant every 20 ms until an answer passes `check`: that answer and the time since the call. */
export async function firstAnswer(
  port: number,
  slug: string,
  check: (reply: Reply) => boolean,
  options: { agent?: http.Agent; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ reply: Reply; ms: number }> {
  const start = performance.now();
  for (;;) {
    const reply = await get(port, '/who', { 'x-tenant-id': slug, ...options.headers }, options.agent);
    const ms = performance.now() - start;
    if (check(reply)) return { reply, ms };
    if (ms > (options.timeoutMs ?? 5_000))
      throw new Error(`${slug} never gave the awaited answer within ${Math.round(ms)} ms; last: ${reply.status} ${JSON.stringify(reply.body)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
