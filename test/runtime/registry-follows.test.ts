import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestInfo, TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { serveWho } from './support-app.js';
import { get, waitFor } from './support-http.js';

let fixture: RuntimeFixture;
let runtime: TenantRuntime;
let server: { port: number; close(): Promise<void> } | undefined;
let port: number;
let appName: string;

const control = (sql: string, params?: unknown[]) => fixture.project.query(`${fixture.project.prefix}_control`, sql, params);

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
  ]);
  appName = `${fixture.project.prefix} follows`;
  // Lookups trusted 60 s while the channel is up (the default): only a notification can make a change show sooner.
  // While it is down, 300 ms; the first reconnect waits 3 s, long enough to change things meanwhile.
  runtime = await fixture.runtime({ applicationName: appName, registry: { fallbackTtlMs: 300, backoffMs: 3_000 } });
  server = await serveWho(runtime);
  port = server.port;
}, 120_000);
afterAll(async () => {
  await server?.close();
  await fixture?.cleanup();
});

const named = (slug: string): RequestInfo => ({ host: '127.0.0.1', url: '/', header: (name) => (name === 'x-tenant-id' ? slug : undefined) });

/** What the runtime answers for a tenant now: `ok`, or the error code. */
async function answer(slug: string): Promise<string> {
  return runtime.admit(named(slug)).then(
    () => 'ok',
    (error: { code?: string }) => error.code ?? String(error),
  );
}

/** The time from now until the runtime answers `code` for `slug`, polled every 10 ms. */
const until = (slug: string, code: string, timeoutMs = 3_000) => waitFor(async () => (await answer(slug)) === code, { everyMs: 10, timeoutMs, what: `${slug} → ${code}` });

describe('the runtime follows the registry', () => {
  it("sees maintenance (a tenant's and the fleet's), a status change and a new tenant within a second, by notification", async () => {
    expect(await answer('paris')).toBe('ok');
    expect(await answer('nantes')).toBe('FLO_TENANT_NOT_FOUND');
    const heard = runtime.stats().registry.notifications;
    const timings: Record<string, number> = {};

    await fixture.flotilla.maintenance.down('paris', { retryAfter: 30 });
    timings.down = await until('paris', 'FLO_TENANT_UNAVAILABLE');
    await fixture.flotilla.maintenance.up('paris');
    timings.up = await until('paris', 'ok');

    await control("UPDATE flotilla.tenants SET status = 'suspended' WHERE slug = 'lyon'");
    timings.suspended = await until('lyon', 'FLO_TENANT_SUSPENDED');
    await control("UPDATE flotilla.tenants SET status = 'active' WHERE slug = 'lyon'");
    timings.reactivated = await until('lyon', 'ok');

    await fixture.flotilla.maintenance.downAll({ retryAfter: 10 });
    timings.fleetDown = await until('lyon', 'FLO_TENANT_UNAVAILABLE');
    await fixture.flotilla.maintenance.upAll();
    timings.fleetUp = await until('lyon', 'ok');

    // "nantes" was looked up and found missing: that answer was cached too, and is dropped when it is created.
    await fixture.flotilla.tenants.create({ slug: 'nantes', kind: 'schema' });
    timings.created = await until('nantes', 'ok');

    console.log(`[registry] change → seen (ms): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))}`);
    for (const ms of Object.values(timings)) expect(ms).toBeLessThan(1_000);
    expect(runtime.stats().registry.notifications).toBeGreaterThan(heard);
    expect(runtime.stats().registry.listening).toBe(true);
  });

  it('routes a custom domain to its tenant within a second of `domains.add`, and stops within a second of its removal', async () => {
    const byHost = (host: string) => get(port, '/who', { host });
    const domain = 'app.paris-lending.test';
    const before = await byHost(domain);
    expect([before.status, before.body.error?.code]).toEqual([400, 'FLO_TENANT_UNRESOLVED']);

    await fixture.flotilla.domains.add('paris', domain);
    const added = await waitFor(async () => (await byHost(domain)).body.who === 'paris', { everyMs: 10, what: `${domain} → paris` });
    expect((await byHost(`${domain}:8443`)).body).toMatchObject({ tenant: 'paris', who: 'paris' });

    await fixture.flotilla.domains.remove('paris', domain);
    const removed = await waitFor(async () => (await byHost(domain)).status === 400, { everyMs: 10, what: `${domain} forgotten` });
    // A host the registry does not know names no tenant: the same answer as a request naming none.
    expect((await byHost(domain)).body.error.code).toBe('FLO_TENANT_UNRESOLVED');

    await fixture.flotilla.domains.add('lyon', domain);
    const moved = await waitFor(async () => (await byHost(domain)).body.who === 'lyon', { everyMs: 10, what: `${domain} → lyon` });
    console.log(`[registry] domain added → routed in ${Math.round(added)} ms, removed → refused in ${Math.round(removed)} ms, given to lyon → routed in ${Math.round(moved)} ms`);
    for (const ms of [added, removed, moved]) expect(ms).toBeLessThan(1_000);
  });

  it('still sees changes within fallbackTtlMs while its notification channel is down, and reconnects it', async () => {
    expect(await answer('paris')).toBe('ok');
    const reconnects = runtime.stats().registry.reconnects;
    const killed = await fixture.project.query<{ ok: boolean }>('postgres', 'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [
      `${appName} (listener)`,
    ]);
    expect(killed).toEqual([{ ok: true }]);
    await waitFor(() => !runtime.stats().registry.listening, { everyMs: 5, what: 'the channel to drop' });

    // Changed while nobody listens, just after a fresh lookup: no notification reaches the runtime, only the short TTL helps.
    expect(await answer('paris')).toBe('ok');
    await fixture.flotilla.maintenance.down('paris', { retryAfter: 30 });
    const seen = await until('paris', 'FLO_TENANT_UNAVAILABLE');
    const stillDown = !runtime.stats().registry.listening;
    console.log(`[registry] channel down: change seen in ${Math.round(seen)} ms (fallbackTtlMs 300)`);
    expect(stillDown).toBe(true);
    expect(seen).toBeLessThan(1_000);

    await waitFor(() => runtime.stats().registry.listening, { everyMs: 10, timeoutMs: 10_000, what: 'the channel to reconnect' });
    expect(runtime.stats().registry.reconnects).toBeGreaterThan(reconnects);
    // Back to notifications: the next change is seen at once again.
    await fixture.flotilla.maintenance.up('paris');
    expect(await until('paris', 'ok')).toBeLessThan(1_000);
    const listeners = await fixture.project.query('postgres', 'SELECT pid FROM pg_stat_activity WHERE application_name = $1', [`${appName} (listener)`]);
    expect(listeners).toHaveLength(1);
  });
});
