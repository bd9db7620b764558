import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFor } from '../../src/runtime/index.js';
import type { TenantRuntime } from '../../src/runtime/index.js';
import { serverUrl } from '../support/project.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { waitFor } from './support-http.js';
import { sampleSessions } from './support-sampler.js';

let fixture: RuntimeFixture;

// 200 tenants: 180 schemas of the shared database and 20 databases of their own, so that the budget is shared across 21 pools.
const schemas = Array.from({ length: 180 }, (_, i) => `s${String(i + 1).padStart(3, '0')}`);
const databases = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}`);
const tenants = [...schemas, ...databases];

beforeAll(async () => {
  const started = performance.now();
  fixture = await runtimeFixture([...databases.map((slug) => ({ slug, kind: 'database' as const })), ...schemas.map((slug) => ({ slug, kind: 'schema' as const }))], {
    concurrency: 8,
  });
  console.log(`[budget] 200 tenants created in ${Math.round(performance.now() - started)} ms`);
}, 180_000);
afterAll(() => fixture?.cleanup());

interface Outcome {
  readonly slug: string;
  /** The slug the query read, or the code it failed with. */
  readonly answer: string;
  readonly error?: unknown;
  readonly finishedAt: number;
}

/** Runs a query as each tenant named, all at once. */
async function queryAll(runtime: TenantRuntime, slugs: readonly string[], sql: string): Promise<Outcome[]> {
  return Promise.all(
    slugs.map((slug) =>
      runtime
        .runAs(slug, async () => (await runtime.db.query<{ slug: string }>(sql)).rows[0]!.slug)
        .then(
          (answer) => ({ slug, answer, finishedAt: performance.now() }),
          (error: { code?: string }) => ({ slug, answer: error.code ?? String(error), error, finishedAt: performance.now() }),
        ),
    ),
  );
}

describe('the connection budget', () => {
  it('never opens more than 20 connections for 200 tenants hammered at once, and no query fails for want of one', async () => {
    const name = `${fixture.project.prefix} budget`;
    const runtime = await fixture.runtime({ applicationName: name, budget: { maxConnections: 20, queueTimeoutMs: 30_000 } });
    // The ceiling is on the tenants' connections (application_name exactly `name`); the control plane's registry
    // lookups (a pool of at most 4) and its notification channel (1) have names of their own and are counted apart.
    const sampler = await sampleSessions(serverUrl(), [name]);
    const controlSampler = await sampleSessions(serverUrl(), [`${name} (registry)`, `${name} (listener)`]);
    const started = performance.now();
    // Ten queries per tenant, all at once: 2,000 queries waiting for 20 connections in 21 databases.
    const slugs = Array.from({ length: 2_000 }, (_, i) => tenants[i % tenants.length]!);
    const results = await queryAll(runtime, slugs, 'SELECT slug, pg_sleep(0.005) FROM who');
    const elapsed = performance.now() - started;
    const seen = await sampler.stop();
    const control = await controlSampler.stop();
    const stats = runtime.stats().connections;
    console.log(
      `[budget] 2,000 queries over 200 tenants in ${Math.round(elapsed)} ms: at most ${seen.max} tenant sessions in pg_stat_activity (${seen.samples} samples) and ${control.max} of the control plane, peak ${stats.peak}, ${stats.opened} opened, ${stats.evicted} evicted`,
    );
    expect(results.filter((r) => r.answer !== r.slug).slice(0, 5)).toEqual([]);
    expect(seen.max).toBeLessThanOrEqual(20);
    expect(stats.peak).toBeLessThanOrEqual(20);
    expect(control.max).toBeLessThanOrEqual(5);
    // The ceiling was reached, and connections moved between databases to serve every tenant.
    expect(stats.peak).toBe(20);
    expect(seen.max).toBeGreaterThanOrEqual(15);
    expect(stats.evicted).toBeGreaterThan(0);
    expect(stats.timedOut).toBe(0);
    await runtime.close();
  }, 90_000);

  it('fails only the queries that waited past the queue timeout, with FLO_RUNTIME_BUSY answered 503 and Retry-After', async () => {
    const runtime = await fixture.runtime({ applicationName: `${fixture.project.prefix} busy`, budget: { maxConnections: 4, maxPerTenant: 4, queueTimeoutMs: 200 } });
    // Twelve tenants at once, each holding a connection for 500 ms: four are served, eight wait 200 ms and give up.
    const results = await queryAll(runtime, schemas.slice(0, 12), 'SELECT slug, pg_sleep(0.5) FROM who');
    const served = results.filter((r) => r.answer === r.slug);
    const busy = results.filter((r) => r.answer === 'FLO_RUNTIME_BUSY');
    expect([served.length, busy.length]).toEqual([4, 8]);
    expect(runtime.stats().connections.timedOut).toBe(8);
    // What an app answers for a query that waited too long.
    const answer = answerFor(busy[0]!.error);
    expect([answer.status, answer.body.error.code, answer.headers['retry-after']]).toEqual([503, 'FLO_RUNTIME_BUSY', '1']);
    // The budget is whole again afterwards.
    expect((await queryAll(runtime, schemas.slice(0, 4), 'SELECT slug FROM who')).map((r) => r.answer)).toEqual(schemas.slice(0, 4));
    await runtime.close();
  });

  it("keeps one tenant's flood from starving another: its single query is served long before the flood ends", async () => {
    const runtime = await fixture.runtime({ applicationName: `${fixture.project.prefix} fair`, budget: { maxConnections: 10, maxPerTenant: 3, queueTimeoutMs: 30_000 } });
    const flood = queryAll(runtime, Array(100).fill('s010'), 'SELECT slug, pg_sleep(0.02) FROM who');
    // Once the flood is queued behind its three connections.
    await waitFor(() => runtime.stats().connections.waiting >= 90, { everyMs: 5, what: 'the flood to queue' });
    const asked = performance.now();
    const [other] = await queryAll(runtime, ['d01'], 'SELECT slug, pg_sleep(0.02) FROM who');
    const flooded = await flood;
    const floodEnd = Math.max(...flooded.map((r) => r.finishedAt));
    console.log(
      `[budget] flood of 100 by one tenant ended after ${Math.round(floodEnd - asked)} ms; another tenant's query answered in ${Math.round(other!.finishedAt - asked)} ms`,
    );
    expect(other!.answer).toBe('d01');
    expect(flooded.every((r) => r.answer === 's010')).toBe(true);
    expect(other!.finishedAt).toBeLessThan(floodEnd);
    expect(other!.finishedAt - asked).toBeLessThan((floodEnd - asked) / 2);
    expect(runtime.stats().connections.peak).toBeLessThanOrEqual(4);
    await runtime.close();
  });
});
