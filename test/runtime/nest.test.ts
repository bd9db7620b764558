import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOTILLA_RUNTIME, FlotillaExceptionFilter, FlotillaModule } from '../../src/runtime/adapters/nest.js';
import type { RuntimeOptions, TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { get, waitFor } from './support-http.js';
import { portOf, valueModule, whoApp } from './nest-app.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

let fixture: RuntimeFixture;
let runtime: TenantRuntime;
let app: INestApplication;
let port: number;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
  ]);
  runtime = await fixture.runtime();
  app = await whoApp(FlotillaModule.forRoot({ runtime, exclude: ['health'] }), [{ provide: APP_FILTER, useClass: FlotillaExceptionFilter }]);
  port = portOf(app);
});

afterAll(async () => {
  await app?.close();
  await fixture?.cleanup();
});

describe('the Nest module', () => {
  it('resolves the tenant by X-Tenant-ID and by subdomain; @Tenant() and TenantDatabase are that tenant', async () => {
    for (const slug of ['paris', 'lyon']) {
      const byHeader = await get(port, '/whoami', { 'x-tenant-id': slug });
      expect(byHeader.status).toBe(200);
      expect(byHeader.body).toEqual({ tenant: slug, source: 'header', who: slug, scope: slug });
      const byHost = await get(port, '/whoami', { host: `${slug}.localhost:${port}` });
      expect(byHost.body).toEqual({ tenant: slug, source: 'subdomain', who: slug, scope: slug });
    }
  });

  it('routes /t/<slug>/… as the route without the prefix', async () => {
    const reply = await get(port, '/t/lyon/whoami?x=1');
    expect(reply.body).toEqual({ tenant: 'lyon', source: 'path', who: 'lyon', scope: 'lyon' });
  });

  it('keeps each request on its own tenant while requests interleave', async () => {
    // Each holds its session a moment, so that the requests overlap.
    const slugs = Array.from({ length: 16 }, (_, i) => (i % 2 ? 'paris' : 'lyon'));
    const replies = await Promise.all(slugs.map((slug) => get(port, '/slow', { 'x-tenant-id': slug })));
    expect(replies.map((r) => r.body)).toEqual(slugs.map((slug) => ({ tenant: slug, who: slug, items: 3 })));
  });

  it('answers a request it cannot serve as JSON with a stable code, before the controller', async () => {
    const none = await get(port, '/whoami');
    expect(none.status).toBe(400);
    expect(none.headers['content-type']).toMatch(/^application\/json/);
    expect(none.body.error.code).toBe('FLO_TENANT_UNRESOLVED');
    const malformed = await get(port, '/whoami', { 'x-tenant-id': 'Not A Slug' });
    expect([malformed.status, malformed.body.error.code]).toEqual([400, 'FLO_SLUG_INVALID']);
    const unknown = await get(port, '/whoami', { 'x-tenant-id': 'nantes' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'FLO_TENANT_NOT_FOUND', tenant: 'nantes' });
  });

  it('answers a FlotillaError thrown in a controller with its status, given FlotillaExceptionFilter', async () => {
    expect((await get(port, '/elsewhere?slug=lyon', { 'x-tenant-id': 'paris' })).body).toEqual({ slug: 'lyon' });
    const unknown = await get(port, '/elsewhere?slug=nantes', { 'x-tenant-id': 'paris' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toMatch(/^application\/json/);
    expect(unknown.body.error).toMatchObject({ code: 'FLO_TENANT_NOT_FOUND', tenant: 'nantes' });
  });

  it('leaves excluded routes alone', async () => {
    const health = await get(port, '/health');
    expect(health).toMatchObject({ status: 200, body: { ok: true, tenant: null } });
  });

  it('answers 503 with Retry-After within a second of the tenant starting an upgrade', async () => {
    const control = `${fixture.project.prefix}_control`;
    await fixture.project.query(control, "UPDATE flotilla.tenants SET status = 'upgrading' WHERE slug = 'lyon'");
    try {
      let last = await get(port, '/whoami', { 'x-tenant-id': 'lyon' });
      const refused = async () => {
        last = await get(port, '/whoami', { 'x-tenant-id': 'lyon' });
        return last.status === 503;
      };
      await waitFor(refused, { timeoutMs: 1_000, what: '503 for lyon' });
      expect(last.headers['retry-after']).toBe('5');
      expect(last.body.error).toMatchObject({ code: 'FLO_TENANT_UNAVAILABLE', tenant: 'lyon' });
      expect((await get(port, '/whoami', { 'x-tenant-id': 'paris' })).status).toBe(200);
      // Refused inside a controller: FlotillaExceptionFilter answers as the middleware does.
      const inside = await get(port, '/elsewhere?slug=lyon', { 'x-tenant-id': 'paris' });
      expect([inside.status, inside.headers['retry-after'], inside.body.error.code]).toEqual([503, '5', 'FLO_TENANT_UNAVAILABLE']);
    } finally {
      await fixture.project.query(control, "UPDATE flotilla.tenants SET status = 'active' WHERE slug = 'lyon'");
    }
    await waitFor(async () => (await get(port, '/whoami', { 'x-tenant-id': 'lyon' })).status === 200, { timeoutMs: 1_000, what: 'lyon back' });
  });
});

describe('who closes the runtime', () => {
  it('leaves open a runtime it was given', async () => {
    const given = await fixture.runtime();
    const other = await whoApp(FlotillaModule.forRoot({ runtime: given }));
    expect(other.get(FLOTILLA_RUNTIME)).toBe(given);
    await other.close();
    expect(await given.runAs('paris', async () => (await given.db.query<{ slug: string }>('SELECT slug FROM who')).rows[0]?.slug)).toBe('paris');
  });

  it('opens one from options (forRootAsync, from another provider) and closes it when the app closes', async () => {
    const options: RuntimeOptions = { databaseUrl: fixture.databaseUrl };
    const owned = await whoApp(FlotillaModule.forRootAsync({ imports: [valueModule('OPTIONS', options)], inject: ['OPTIONS'], useFactory: (o: RuntimeOptions) => o }));
    const reply = await get(portOf(owned), '/whoami', { 'x-tenant-id': 'paris' });
    expect(reply.body).toMatchObject({ tenant: 'paris', who: 'paris' });
    const opened: TenantRuntime = owned.get(FLOTILLA_RUNTIME);
    const paris = await opened.runAs('paris', (tenant) => tenant);
    await owned.close();
    await expect(opened.within(paris, () => opened.db.query('SELECT 1'))).rejects.toMatchObject({ code: 'FLO_RUNTIME_BUSY' });
  });
});

describe('the examples', () => {
  it('serves /whoami from examples/runtime/nest.ts, written with decorators as users write them', async () => {
    const source = await readFile(join(REPO, 'examples/runtime/nest.ts'), 'utf8');
    expect(source).toContain("from 'flotilla/runtime/nest'");
    // The example imports the package as a user does; here it runs on the sources.
    const dir = await mkdtemp(join(REPO, 'examples/runtime/.tmp-nest-'));
    try {
      await writeFile(
        join(dir, 'nest.ts'),
        source
          .replaceAll("from 'flotilla/runtime/nest'", "from '../../../src/runtime/adapters/nest.js'")
          .replaceAll("from 'flotilla/runtime'", "from '../../../src/runtime/index.js'"),
      );
      const example: { start(url: string, port: number): Promise<{ port: number; close(): Promise<void> }> } = await import(join(dir, 'nest.ts'));
      const running = await example.start(fixture.databaseUrl, 0);
      try {
        expect((await get(running.port, '/whoami', { 'x-tenant-id': 'paris' })).body).toEqual({ tenant: 'paris', who: 'paris' });
        expect((await get(running.port, '/whoami', { host: `lyon.localhost:${running.port}` })).body).toEqual({ tenant: 'lyon', who: 'lyon' });
        expect((await get(running.port, '/t/lyon/whoami')).body).toEqual({ tenant: 'lyon', who: 'lyon' });
      } finally {
        await running.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves /whoami from examples/runtime/nest-cjs.cjs, a CommonJS app that require()s the built runtime, and exits once closed', async () => {
    const child = spawn(process.execPath, [join(REPO, 'examples/runtime/nest-cjs.cjs')], {
      env: { ...process.env, FLOTILLA_DATABASE_URL: fixture.databaseUrl, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const childPort = await firstLine(child).then((line) => (JSON.parse(line) as { port: number }).port);
      expect((await get(childPort, '/whoami', { 'x-tenant-id': 'lyon' })).body).toEqual({ tenant: 'lyon', who: 'lyon' });
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      // It exits by itself: the module closed the runtime's sessions and timers.
      const [code] = (await Promise.race([exited, new Promise((r) => setTimeout(() => r(['still running']), 5_000))])) as [unknown];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

/** The child's first line on stdout; its stderr in the error when it exits first. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.once('exit', (code) => reject(new Error(`The example exited (${code}) before listening: ${err}`)));
  });
}
