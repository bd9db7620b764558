import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BudgetStats } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import type { WhoAnswer } from './support-app.js';
import { get } from './support-http.js';
import type { AppProcess } from './support-process.js';
import { startApp } from './support-process.js';

let fixture: RuntimeFixture;
let app: AppProcess;
/** Two sessions for two tenants that may each hold both: nearly every checkout takes a session the other tenant used last. */
let shared: AppProcess;
let agent: http.Agent;

const IN_FLIGHT = 50;

beforeAll(async () => {
  // paris has a database of its own; lyon and nice are schemas of one shared database.
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
    { slug: 'nice', kind: 'schema' },
  ]);
  // Fewer connections than requests in flight: requests wait, and sessions pass from tenant to tenant.
  [app, shared] = await Promise.all([
    startApp(fixture.databaseUrl, { budget: { maxConnections: 4, maxPerTenant: 2, queueTimeoutMs: 30_000 }, applicationName: `${fixture.project.prefix} app` }),
    startApp(fixture.databaseUrl, { budget: { maxConnections: 2, maxPerTenant: 2, queueTimeoutMs: 30_000 }, applicationName: `${fixture.project.prefix} shared` }),
  ]);
  agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
}, 120_000);
afterAll(async () => {
  agent?.destroy();
  await app?.stop();
  await shared?.stop();
  await fixture?.cleanup();
});

interface Tally {
  readonly answered: number;
  readonly wrong: string[];
}

/**
 * `total` requests, alternating between two tenants in a random order, named
 * by header, subdomain or path, half read through `runtime.db` and half
 * through the pool's callbacks, IN_FLIGHT at once. Every answer is checked.
 */
async function hammer(port: number, tenants: readonly [string, string], total: number): Promise<Tally> {
  let next = 0;
  let answered = 0;
  const wrong: string[] = [];
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      const slug = tenants[Math.random() < 0.5 ? 0 : 1]!;
      const style = i % 4 < 2 ? 'pool' : 'db';
      const headers: Record<string, string> = { 'x-style': style };
      let path = '/who';
      if (i % 3 === 0) headers['x-tenant-id'] = slug;
      else if (i % 3 === 1) headers.host = `${slug}.localhost:3000`;
      else path = `/t/${slug}/who`;
      const reply = await get(port, path, headers, agent);
      const body = reply.body as WhoAnswer;
      answered++;
      if (reply.status !== 200 || body.tenant !== slug || body.who !== slug || body.url !== '/who') {
        wrong.push(`${slug} via ${style} ${path}: ${reply.status} ${JSON.stringify(body)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return { answered, wrong };
}

async function stats(port: number): Promise<BudgetStats> {
  return (await get(port, '/_stats', {}, agent)).body.connections as BudgetStats;
}

describe('tenant isolation, in a real app process', () => {
  it('answers 10,000 interleaved requests of a database tenant and a schema tenant, each with its own data only', async () => {
    const before = await stats(app.port);
    const started = performance.now();
    const tally = await hammer(app.port, ['paris', 'lyon'], 10_000);
    const elapsed = performance.now() - started;
    const after = await stats(app.port);
    console.log(
      `[isolation] paris + lyon: ${tally.answered} requests in ${Math.round(elapsed)} ms, ${tally.wrong.length} wrong; checkouts ${after.checkouts - before.checkouts}, peak ${after.peak} connections`,
    );
    expect(tally.wrong.slice(0, 5)).toEqual([]);
    expect(tally.answered).toBe(10_000);
    expect(after.checkouts - before.checkouts).toBe(10_000);
    expect(after.peak).toBeLessThanOrEqual(4);
    expect(after.timedOut).toBe(0);
  }, 90_000);

  it('keeps two schema tenants of one database apart while the same sessions switch between them', async () => {
    const before = await stats(shared.port);
    const tally = await hammer(shared.port, ['lyon', 'nice'], 2_000);
    const after = await stats(shared.port);
    const rebinds = after.rebinds - before.rebinds;
    console.log(`[isolation] lyon + nice: ${tally.answered} requests, ${tally.wrong.length} wrong; ${rebinds} sessions reset for the other tenant, peak ${after.peak}`);
    expect(tally.wrong.slice(0, 5)).toEqual([]);
    expect(tally.answered).toBe(2_000);
    // The point of this run: pooled sessions did change hands between the two tenants, many times.
    expect(rebinds).toBeGreaterThan(100);
    expect(after.peak).toBeLessThanOrEqual(2);
  }, 60_000);
});
