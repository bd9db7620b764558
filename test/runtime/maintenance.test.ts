import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tenantResults } from '../support/cli.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { get } from './support-http.js';
import type { AppProcess } from './support-process.js';
import { startApp } from './support-process.js';
import { firstAnswer, watch } from './support-watch.js';

let fixture: RuntimeFixture;
let app: AppProcess;
let agent: http.Agent;
const SECRET = 'staff-only-7f3a9c';

const cli = (...args: string[]) => runCli(args, { cwd: fixture.project.dir, env: fixture.project.env });
const is = (status: number) => (reply: { status: number }) => reply.status === status;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
  ]);
  app = await startApp(fixture.databaseUrl, { maintenance: { bypassSecret: SECRET }, applicationName: `${fixture.project.prefix} app` });
  agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
}, 120_000);
afterAll(async () => {
  agent?.destroy();
  await app?.stop();
  await fixture?.cleanup();
});

describe('maintenance, seen by a running app', () => {
  it('answers 503 with Retry-After for paris within a second of `flotilla tenant down paris`, lets staff in with the bypass secret, while lyon keeps answering 200', async () => {
    expect((await get(app.port, '/who', { 'x-tenant-id': 'paris' }, agent)).status).toBe(200);
    const lyon = watch(app.port, 'lyon', agent);

    const down = await cli('tenant', 'down', 'paris', '--retry-after', '30', '--message', 'Back at 14:00');
    expect(down.code).toBe(0);
    const unavailable = await firstAnswer(app.port, 'paris', is(503), { agent });
    console.log(`[maintenance] tenant down → first 503 in ${Math.round(unavailable.ms)} ms after the CLI exited`);
    expect(unavailable.ms).toBeLessThan(1_000);
    expect(unavailable.reply.headers['retry-after']).toBe('30');
    expect(unavailable.reply.body.error).toMatchObject({ code: 'FLO_TENANT_UNAVAILABLE', message: 'Back at 14:00', tenant: 'paris' });

    // The vendor's staff get through, by header or by cookie; a wrong secret does not.
    const byHeader = await get(app.port, '/who', { 'x-tenant-id': 'paris', 'x-flotilla-bypass': SECRET }, agent);
    expect([byHeader.status, byHeader.body.who]).toEqual([200, 'paris']);
    const byCookie = await get(app.port, '/who', { 'x-tenant-id': 'paris', cookie: `theme=dark; flotilla_bypass=${SECRET}` }, agent);
    expect([byCookie.status, byCookie.body.who]).toEqual([200, 'paris']);
    expect((await get(app.port, '/who', { 'x-tenant-id': 'paris', 'x-flotilla-bypass': `${SECRET}x` }, agent)).status).toBe(503);
    expect((await get(app.port, '/who', { 'x-tenant-id': 'paris', cookie: 'flotilla_bypass=guess' }, agent)).status).toBe(503);

    const up = await cli('tenant', 'up', 'paris');
    expect(up.code).toBe(0);
    const back = await firstAnswer(app.port, 'paris', is(200), { agent });
    console.log(`[maintenance] tenant up → first 200 in ${Math.round(back.ms)} ms`);
    expect(back.ms).toBeLessThan(1_000);
    expect(back.reply.body).toMatchObject({ tenant: 'paris', who: 'paris' });

    const lyonStatuses = await lyon.end();
    expect(lyonStatuses.length).toBeGreaterThan(10);
    expect(lyonStatuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('takes the whole fleet down with --all and brings it back with up --all, each within a second', async () => {
    expect((await cli('tenant', 'down', '--all', '--retry-after', '120')).code).toBe(0);
    for (const slug of ['paris', 'lyon']) {
      const { ms, reply } = await firstAnswer(app.port, slug, is(503), { agent });
      expect(ms).toBeLessThan(1_000);
      expect(reply.headers['retry-after']).toBe('120');
      expect(reply.body.error.code).toBe('FLO_TENANT_UNAVAILABLE');
    }
    expect((await get(app.port, '/who', { 'x-tenant-id': 'lyon', 'x-flotilla-bypass': SECRET }, agent)).status).toBe(200);
    expect((await cli('tenant', 'up', '--all')).code).toBe(0);
    for (const slug of ['paris', 'lyon']) expect((await firstAnswer(app.port, slug, is(200), { agent })).ms).toBeLessThan(1_000);
  });

  it('answers 503 for paris while a real rollout upgrades it, 200 for lyon throughout, and 200 for paris within a second of the end', async () => {
    // Slow enough to be watched; a real change too.
    await fixture.project.write({ '0002_note.sql': 'SELECT pg_sleep(1.5);\nALTER TABLE who ADD COLUMN note text;\n' });
    const lyon = watch(app.port, 'lyon', agent);
    let ended = 0;
    const rollout = cli('migrate', '--tenant', 'paris', '--json').then((result) => {
      ended = performance.now();
      return result;
    });
    const upgrading = await firstAnswer(app.port, 'paris', is(503), { agent, timeoutMs: 15_000 });
    expect(upgrading.reply.body.error).toMatchObject({ code: 'FLO_TENANT_UNAVAILABLE', tenant: 'paris' });
    expect(upgrading.reply.body.error.message).toContain('upgrading');
    expect(upgrading.reply.headers['retry-after']).toBe('5');
    // The bypass is for maintenance only: a database being changed is not served.
    expect((await get(app.port, '/who', { 'x-tenant-id': 'paris', 'x-flotilla-bypass': SECRET }, agent)).status).toBe(503);

    const back = await firstAnswer(app.port, 'paris', (reply) => reply.status === 200 && ended > 0, { agent, timeoutMs: 30_000 });
    const result = await rollout;
    expect(result.code).toBe(0);
    expect(tenantResults(result.stdout)).toEqual({ paris: 'succeeded' });
    const sinceEnd = performance.now() - ended;
    console.log(`[maintenance] rollout: paris 503 seen after ${Math.round(upgrading.ms)} ms, 200 again ${Math.round(sinceEnd)} ms after the CLI exited`);
    expect(sinceEnd).toBeLessThan(1_000);
    expect(back.reply.body).toMatchObject({ tenant: 'paris', who: 'paris' });

    const lyonStatuses = await lyon.end();
    expect(lyonStatuses.filter((s) => s !== 200)).toEqual([]);
    expect(lyonStatuses.length).toBeGreaterThan(20);
    // paris has the new column, lyon (not selected) does not.
    const columns = async (slug: string) =>
      fixture.flotilla.tenants.withClient(
        slug,
        async (c) =>
          (await c.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'who' AND column_name = 'note' AND table_schema = current_schema()")).rows[0]
            .n,
      );
    expect([await columns('paris'), await columns('lyon')]).toEqual([1, 0]);
  }, 60_000);
});
