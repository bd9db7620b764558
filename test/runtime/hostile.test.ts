import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { serveWho } from './support-app.js';
import type { Reply } from './support-http.js';
import { raw, rawGet } from './support-http.js';

let fixture: RuntimeFixture;
let runtime: TenantRuntime;
let server: { port: number; close(): Promise<void> } | undefined;
let port: number;
let appName: string;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
  ]);
  appName = `${fixture.project.prefix} hostile`;
  runtime = await fixture.runtime({ applicationName: appName });
  server = await serveWho(runtime);
  port = server.port;
}, 120_000);
afterAll(async () => {
  await server?.close();
  await fixture?.cleanup();
});

/** What the runtime has done with PostgreSQL so far: its own counters, and its sessions as the server sees them. */
async function footprint() {
  const { connections, registry } = runtime.stats();
  // query_start moves whenever a session runs anything: the registry's, the listener's and the tenants'.
  const sessions = await fixture.project.query<{ pid: number; name: string; query_start: Date | null }>(
    'postgres',
    'SELECT pid, application_name AS name, query_start FROM pg_stat_activity WHERE left(application_name, length($1)) = $1',
    [appName],
  );
  return {
    counters: { registryQueries: registry.queries, opened: connections.opened, checkouts: connections.checkouts },
    sessions: new Map(sessions.map((s) => [s.pid, `${s.name} ${s.query_start?.toISOString()}`])),
  };
}

/** Sessions that ran something between two footprints, or are new: an idle session closing meanwhile is no query. */
function busySessions(before: Awaited<ReturnType<typeof footprint>>, after: Awaited<ReturnType<typeof footprint>>): string[] {
  return [...after.sessions].filter(([pid, seen]) => before.sessions.get(pid) !== seen).map(([pid, seen]) => `${pid} ${seen}`);
}

/** Sends `request` and checks it changed nothing the runtime does with PostgreSQL. */
async function sendQuietly(request: Buffer): Promise<Reply> {
  const before = await footprint();
  const reply = await raw(port, request);
  const after = await footprint();
  expect(after.counters).toEqual(before.counters);
  expect(busySessions(before, after)).toEqual([]);
  return reply;
}

const host = (value: string | Buffer, path = '/who', headers: Record<string, string> = {}) => rawGet(path, { Host: value, ...headers });
const plain = (path: string, headers: Record<string, string> = {}) => rawGet(path, { Host: `127.0.0.1:${port}`, ...headers });

describe('hostile requests', () => {
  beforeAll(async () => {
    // Sessions of every kind open first (registry, listener, paris's database): a hostile request must not use them.
    const ok = await raw(port, host(`paris.localhost:${port}`));
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ tenant: 'paris', who: 'paris' });
  });

  it('serves a normal Host with its port, and names the tenant by header, query or path', async () => {
    expect((await raw(port, host('paris.localhost:3000'))).body).toMatchObject({ tenant: 'paris', who: 'paris' });
    expect((await raw(port, plain('/who', { 'X-Tenant-ID': 'lyon' }))).body).toMatchObject({ tenant: 'lyon', who: 'lyon' });
    expect((await raw(port, plain('/who?tenant=lyon'))).body).toMatchObject({ tenant: 'lyon', who: 'lyon' });
    expect((await raw(port, plain('/t/lyon/who'))).body).toMatchObject({ tenant: 'lyon', who: 'lyon', url: '/who' });
  });

  const refused: [string, () => Buffer, number, string][] = [
    ['a Host with a port that is not a number', () => host('paris.localhost:abc'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with a port above 65535', () => host('paris.localhost:99999'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with port 0', () => host('paris.localhost:0'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with an empty port', () => host('paris.localhost:'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with two ports', () => host('paris.localhost:80:80'), 400, 'FLO_SLUG_INVALID'],
    ['a bad port even when the header names a tenant', () => host('paris.localhost:abc', '/who', { 'X-Tenant-ID': 'paris' }), 400, 'FLO_SLUG_INVALID'],
    ['an uppercase Host', () => host('PARIS.localhost'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with one uppercase letter', () => host('Paris.localhost:3000'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with a trailing dot', () => host('paris.localhost.'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with a trailing dot and a port', () => host('paris.localhost.:3000'), 400, 'FLO_SLUG_INVALID'],
    ['a unicode Host (UTF-8 bytes)', () => host(Buffer.from('pàris.localhost', 'utf8')), 400, 'FLO_SLUG_INVALID'],
    // Outside the base domains a malformed host names no tenant (and is never looked up): nothing else names one here.
    ['a unicode custom domain', () => host(Buffer.from('app.pàris-lending.test', 'utf8')), 400, 'FLO_TENANT_UNRESOLVED'],
    ['a 5,000-character Host', () => host(`${'a'.repeat(4990)}.localhost`), 400, 'FLO_SLUG_INVALID'],
    ['a 5,000-character custom domain', () => host(`${'a.'.repeat(2495)}test`), 400, 'FLO_TENANT_UNRESOLVED'],
    ['two Host headers', () => rawGet('/who', { Host: 'paris.localhost', host: 'lyon.localhost' }), 400, 'FLO_SLUG_INVALID'],
    ['an absolute-form request target naming another host', () => rawGet('http://lyon.localhost/who', { Host: 'paris.localhost' }), 400, 'FLO_SLUG_INVALID'],
    ['a Host with an empty label', () => host('paris..localhost'), 400, 'FLO_SLUG_INVALID'],
    ['a Host with an underscore', () => host('pa_ris.localhost'), 400, 'FLO_SLUG_INVALID'],
    ['".." in the header', () => plain('/who', { 'X-Tenant-ID': '..' }), 400, 'FLO_SLUG_INVALID'],
    ['"%2e%2e" in the header', () => plain('/who', { 'X-Tenant-ID': '%2e%2e' }), 400, 'FLO_SLUG_INVALID'],
    ['"../paris" in the header', () => plain('/who', { 'X-Tenant-ID': '../paris' }), 400, 'FLO_SLUG_INVALID'],
    ['SQL in the header', () => plain('/who', { 'X-Tenant-ID': "paris';DROP TABLE who;--" }), 400, 'FLO_SLUG_INVALID'],
    ['an uppercase slug in the header', () => plain('/who', { 'X-Tenant-ID': 'PARIS' }), 400, 'FLO_SLUG_INVALID'],
    ['the header given twice', () => rawGet('/who', { Host: '127.0.0.1', 'X-Tenant-ID': 'paris', 'x-tenant-id': 'lyon' }), 400, 'FLO_SLUG_INVALID'],
    ['".." in the query', () => plain('/who?tenant=..'), 400, 'FLO_SLUG_INVALID'],
    ['"%2e%2e" in the query', () => plain('/who?tenant=%2e%2e'), 400, 'FLO_SLUG_INVALID'],
    ['"paris%2e" in the query', () => plain('/who?tenant=paris%2e'), 400, 'FLO_SLUG_INVALID'],
    ['malformed percent-encoding in the query', () => plain('/who?tenant=%E0%A4%A'), 400, 'FLO_SLUG_INVALID'],
    ['two tenants in the query', () => plain('/who?tenant=paris&tenant=lyon'), 400, 'FLO_SLUG_INVALID'],
    ['".." in the path', () => plain('/t/../who'), 400, 'FLO_SLUG_INVALID'],
    ['"%2e%2e" in the path', () => plain('/t/%2e%2e/who'), 400, 'FLO_SLUG_INVALID'],
    ['"%2E" in the path', () => plain('/t/%2E/who'), 400, 'FLO_SLUG_INVALID'],
    ['an encoded slash in the path', () => plain('/t/paris%2f..%2flyon/who'), 400, 'FLO_SLUG_INVALID'],
    ['a 9,000-character request target', () => plain(`/who?pad=${'x'.repeat(9_000)}&tenant=paris`), 400, 'FLO_SLUG_INVALID'],
    ['the header and the query naming different tenants', () => plain('/who?tenant=lyon', { 'X-Tenant-ID': 'paris' }), 400, 'FLO_TENANT_AMBIGUOUS'],
    ['the subdomain and the path naming different tenants', () => host('paris.localhost', '/t/lyon/who'), 400, 'FLO_TENANT_AMBIGUOUS'],
    ['no tenant at all', () => plain('/who'), 400, 'FLO_TENANT_UNRESOLVED'],
    ['the bare base domain', () => host('localhost:3000'), 400, 'FLO_TENANT_UNRESOLVED'],
    ['an empty header and query', () => plain('/who?tenant=', { 'X-Tenant-ID': '' }), 400, 'FLO_TENANT_UNRESOLVED'],
  ];

  it.each(refused.map(([name, request, status, code]) => [name, status, code, request] as const))('answers %s with %i %s and no query', async (_name, status, code, request) => {
    const reply = await sendQuietly(request());
    expect(reply.status).toBe(status);
    expect(reply.body.error.code).toBe(code);
    expect(reply.headers['content-type']).toContain('application/json');
  });

  it('serves a request whose Host is an internal name, or whose other query parameters are malformed, by its header', async () => {
    for (const request of [host('app_backend:3000', '/who', { 'X-Tenant-ID': 'paris' }), plain('/who?q=50%', { 'X-Tenant-ID': 'paris' })]) {
      const reply = await raw(port, request);
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ tenant: 'paris', who: 'paris' });
    }
  });

  it('answers 404 for an unknown well-formed slug after one registry lookup, then from the cache, never opening a tenant connection', async () => {
    const before = await footprint();
    const first = await raw(port, plain('/who', { 'X-Tenant-ID': 'nowhere' }));
    expect(first.status).toBe(404);
    expect(first.body.error).toMatchObject({ code: 'FLO_TENANT_NOT_FOUND', tenant: 'nowhere' });
    const after = await footprint();
    expect(after.counters).toEqual({ ...before.counters, registryQueries: before.counters.registryQueries + 1 });
    // The probe does see a query when there is one: a registry session's query_start moved.
    expect(busySessions(before, after)).toEqual([expect.stringContaining('(registry)')]);
    // Asked again, it is known not to exist: not even the registry is asked.
    const again = await sendQuietly(plain('/t/nowhere/who'));
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe('FLO_TENANT_NOT_FOUND');
  });

  it('keeps its registry cache bounded when requests name one random tenant or host after another', async () => {
    const bounded = await fixture.runtime({ applicationName: `${appName} bounded`, registry: { maxEntries: 20 } });
    const admit = (header: string | undefined, host = '127.0.0.1') =>
      bounded.admit({ host, url: '/', header: (name) => (name === 'x-tenant-id' ? header : undefined) }).then(
        (admitted) => admitted.tenant.slug,
        (error: { code?: string }) => error.code,
      );
    const ghosts = await Promise.all(Array.from({ length: 200 }, (_, i) => admit(`ghost-${i}`)));
    const hosts = await Promise.all(Array.from({ length: 200 }, (_, i) => admit(undefined, `ghost-${i}.example.com`)));
    expect(new Set(ghosts)).toEqual(new Set(['FLO_TENANT_NOT_FOUND']));
    expect(new Set(hosts)).toEqual(new Set(['FLO_TENANT_UNRESOLVED']));
    // 20 slugs and 20 hosts at most, whatever was asked.
    expect(bounded.stats().registry.cached).toBeLessThanOrEqual(40);
    expect(await admit('paris')).toBe('paris');
    expect(await admit('ghost-199')).toBe('FLO_TENANT_NOT_FOUND');
  });
});
