import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import type { Framework, Running } from './adapter-apps.js';
import { APPS, readingBody } from './adapter-apps.js';
import type { Answer } from './adapter-client.js';
import { call } from './adapter-client.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FRAMEWORKS: Framework[] = ['express', 'fastify', 'hono'];

let fixture: RuntimeFixture;
let runtime: TenantRuntime;
let tmp: string;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
  ]);
  runtime = await fixture.runtime();
  tmp = await mkdtemp(join(REPO, 'test/runtime/.adapters-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
  await fixture?.cleanup();
});

describe.each(FRAMEWORKS)('the %s adapter', (framework) => {
  let app: Running;
  beforeAll(async () => {
    app = await APPS[framework](runtime);
  });
  afterAll(async () => {
    await app?.close();
  });

  it("finds the tenant by subdomain, header, query or path prefix, and the handler reads that tenant's table", async () => {
    const port = app.port;
    expect((await call(port, '/whoami', { host: `paris.localhost:${port}` })).body).toEqual({ tenant: 'paris', source: 'subdomain', who: 'paris', path: '/whoami' });
    expect((await call(port, '/whoami', { host: `lyon.localhost:${port}` })).body).toEqual({ tenant: 'lyon', source: 'subdomain', who: 'lyon', path: '/whoami' });
    expect((await call(port, '/whoami', { headers: { 'X-Tenant-ID': 'lyon' } })).body).toEqual({ tenant: 'lyon', source: 'header', who: 'lyon', path: '/whoami' });
    expect((await call(port, '/whoami?tenant=paris')).body).toEqual({ tenant: 'paris', source: 'query', who: 'paris', path: '/whoami' });
    // The prefix names the tenant and is gone before routing: the route /whoami answers.
    expect((await call(port, '/t/lyon/whoami?x=1')).body).toEqual({ tenant: 'lyon', source: 'path', who: 'lyon', path: '/whoami' });
    expect((await call(port, '/t/paris/whoami')).body).toEqual({ tenant: 'paris', source: 'path', who: 'paris', path: '/whoami' });
  });

  it('keeps each request in its own tenant after awaits, in timers, in stream events and after the body is read', async () => {
    const slugs = Array.from({ length: 24 }, (_, i) => (i % 2 ? 'paris' : 'lyon'));
    const answers = await Promise.all(
      slugs.flatMap((slug, i) => [
        call(app.port, '/timer', { headers: { 'X-Tenant-ID': slug } }),
        call(app.port, '/stream', { host: `${slug}.localhost:${app.port}` }),
        call(app.port, `/t/${slug}/echo`, { method: 'POST', json: { i }, headers: { 'x-wait': `${framework}-${i}` }, restAfter: once(readingBody, `${framework}-${i}`) }),
        call(app.port, `/whoami?tenant=${slug}`),
      ]),
    );
    slugs.forEach((slug, i) => {
      const [timer, stream, echo, who] = answers.slice(i * 4, i * 4 + 4) as [Answer, Answer, Answer, Answer];
      expect(timer.body).toEqual({ tenant: slug });
      expect(stream.body).toEqual({ tenants: [slug, slug] });
      expect(echo.body).toEqual({ tenant: slug, body: { i } });
      expect(who.body).toMatchObject({ tenant: slug, who: slug });
    });
  });

  it('answers a request naming no tenant, an unknown one, a malformed one or two with JSON errors', async () => {
    const port = app.port;
    const none = await call(port, '/whoami');
    expect(none.status).toBe(400);
    expect(none.headers['content-type']).toMatch(/^application\/json/);
    expect(none.body.error.code).toBe('FLO_TENANT_UNRESOLVED');
    // A host that is not a subdomain of a base domain names nobody either.
    expect(await errorOf(call(port, '/whoami', { host: `localhost:${port}` }))).toEqual([400, 'FLO_TENANT_UNRESOLVED']);
    const unknown = await call(port, '/whoami', { headers: { 'X-Tenant-ID': 'nowhere' } });
    expect([unknown.status, unknown.body.error]).toEqual([404, expect.objectContaining({ code: 'FLO_TENANT_NOT_FOUND', tenant: 'nowhere' })]);
    expect(await errorOf(call(port, '/whoami', { host: `rome.localhost:${port}` }))).toEqual([404, 'FLO_TENANT_NOT_FOUND']);
    expect(await errorOf(call(port, '/whoami', { headers: { 'X-Tenant-ID': 'Not_A_Slug' } }))).toEqual([400, 'FLO_SLUG_INVALID']);
    expect(await errorOf(call(port, '/whoami?tenant=lyon', { headers: { 'X-Tenant-ID': 'paris' } }))).toEqual([400, 'FLO_TENANT_AMBIGUOUS']);
    // The path prefix is read as received, even when the router saw the route without it.
    expect(await errorOf(call(port, '/t/paris/whoami', { headers: { 'X-Tenant-ID': 'lyon' } }))).toEqual([400, 'FLO_TENANT_AMBIGUOUS']);
    expect(await errorOf(call(port, '/whoami', { host: `paris.localhost:${port}`, headers: { 'X-Tenant-ID': 'paris' } }))).toEqual([200, undefined]);
  });

  it('follows the registry within a second: 403 suspended, 410 archived, 503 with Retry-After while upgrading, served again when active', async () => {
    const ask = () => call(app.port, '/whoami', { headers: { 'X-Tenant-ID': 'lyon' } });
    try {
      for (const [status, code, http] of [
        ['suspended', 'FLO_TENANT_SUSPENDED', 403],
        ['archived', 'FLO_TENANT_ARCHIVED', 410],
        ['upgrading', 'FLO_TENANT_UNAVAILABLE', 503],
      ] as const) {
        await setStatus('lyon', status);
        const answer = await until(ask, (a) => a.status === http);
        expect(answer.body.error).toMatchObject({ code, tenant: 'lyon' });
        expect(answer.headers['retry-after']).toBe(status === 'upgrading' ? '5' : undefined);
        // The other tenant is served all along.
        expect((await call(app.port, '/whoami', { headers: { 'X-Tenant-ID': 'paris' } })).body).toMatchObject({ tenant: 'paris', who: 'paris' });
      }
    } finally {
      await setStatus('lyon', 'active');
    }
    expect((await until(ask, (a) => a.status === 200)).body).toMatchObject({ tenant: 'lyon', who: 'lyon' });
  });

  it(`runs examples/runtime/${framework}.ts as written`, async () => {
    const example = await loadExample(framework);
    const started = await example.start(fixture.databaseUrl, 0);
    try {
      const port = (started.server.address() as AddressInfo).port;
      expect(await call(port, '/whoami', { host: `paris.localhost:${port}` })).toMatchObject({ status: 200, body: { tenant: 'paris', who: 'paris' } });
      expect((await call(port, '/t/lyon/whoami')).body).toEqual({ tenant: 'lyon', who: 'lyon' });
      expect((await call(port, '/whoami', { headers: { 'X-Tenant-ID': 'lyon' } })).body).toEqual({ tenant: 'lyon', who: 'lyon' });
      expect(await errorOf(call(port, '/whoami'))).toEqual([400, 'FLO_TENANT_UNRESOLVED']);
    } finally {
      await started.close();
    }
  });
});

async function errorOf(answer: Promise<Answer>): Promise<[number, string | undefined]> {
  const { status, body } = await answer;
  return [status, body?.error?.code];
}

async function setStatus(slug: string, status: string): Promise<void> {
  await fixture.project.query(`${fixture.project.prefix}_control`, 'UPDATE flotilla.tenants SET status = $1 WHERE slug = $2', [status, slug]);
}

/** Asks until the answer is the expected one: the runtime hears of a registry change by notification, within a second. */
async function until(ask: () => Promise<Answer>, done: (answer: Answer) => boolean, withinMs = 1_000): Promise<Answer> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const answer = await ask();
    if (done(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`Still ${answer.status} ${JSON.stringify(answer.body)} after ${withinMs} ms.`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The example as a user writes it, importing `flotilla/runtime…`, with those
 * imports pointed at the sources (the package is not built for the tests).
 */
async function loadExample(framework: Framework): Promise<{ start(databaseUrl: string, port: number): Promise<{ server: Server; close(): Promise<void> }> }> {
  const source = await readFile(join(REPO, `examples/runtime/${framework}.ts`), 'utf8');
  const pointed = source.replace(/'flotilla\/runtime(?:\/(\w+))?'/g, (_, adapter?: string) =>
    JSON.stringify(join(REPO, adapter ? `src/runtime/adapters/${adapter}.ts` : 'src/runtime/index.ts')),
  );
  expect(pointed).not.toMatch(/'flotilla/);
  const file = join(tmp, `${framework}.ts`);
  await writeFile(file, pointed);
  return import(file);
}
