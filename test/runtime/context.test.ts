import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTenant } from '../../src/runtime/index.js';
import type { TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';
import { waitFor } from './support-http.js';

let fixture: RuntimeFixture;
/** One connection for every tenant: each checkout takes the session the previous tenant used. */
let runtime: TenantRuntime;
let role: string;

const control = (sql: string, params?: unknown[]) => fixture.project.query(`${fixture.project.prefix}_control`, sql, params);

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'lyon', kind: 'schema' },
    { slug: 'nice', kind: 'schema' },
    { slug: 'brest', kind: 'schema' },
  ]);
  runtime = await fixture.runtime({ budget: { maxConnections: 1, maxPerTenant: 1 }, applicationName: `${fixture.project.prefix} context` });
  role = `${fixture.project.prefix}_visitor`;
  await fixture.project.query('postgres', `CREATE ROLE "${role}" NOLOGIN`);
}, 120_000);
afterAll(async () => {
  await fixture?.cleanup();
  if (role) await fixture.project.query('postgres', `DROP ROLE IF EXISTS "${role}"`);
});

/** The code of what `promise` rejected with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: { code?: string }) => error.code ?? String(error),
  );
}

const who = async () => (await runtime.db.query<{ slug: string }>('SELECT slug FROM who')).rows[0]!.slug;

describe('the tenant in scope', () => {
  it('is nowhere outside a request or runAs: reading it, or querying, fails with FLO_NO_TENANT_SCOPE', async () => {
    expect(() => currentTenant()).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
    expect(() => runtime.tenant()).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
    expect(await codeOf(runtime.db.query('SELECT 1'))).toBe('FLO_NO_TENANT_SCOPE');
    expect(await codeOf(runtime.pool().connect())).toBe('FLO_NO_TENANT_SCOPE');
    // A scope ends with its callback: what runs after it sees no tenant.
    await runtime.runAs('paris', () => undefined);
    expect(() => currentTenant()).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
  });

  it('refuses runAs for a tenant that is malformed, unknown, suspended, archived, upgrading or down, with the code a request would get', async () => {
    expect(await codeOf(runtime.runAs('../paris', who))).toBe('FLO_SLUG_INVALID');
    expect(await codeOf(runtime.runAs('nowhere', who))).toBe('FLO_TENANT_NOT_FOUND');
    const becomes = async (status: string, code: string) => {
      await control('UPDATE flotilla.tenants SET status = $1 WHERE slug = $2', [status, 'brest']);
      await waitFor(async () => (await codeOf(runtime.runAs('brest', who))) === code, { what: `brest ${status} → ${code}` });
    };
    await becomes('suspended', 'FLO_TENANT_SUSPENDED');
    await becomes('archived', 'FLO_TENANT_ARCHIVED');
    await becomes('upgrading', 'FLO_TENANT_UNAVAILABLE');
    // ignoreMaintenance is for maintenance only: a database being changed is not served.
    expect(await codeOf(runtime.runAs('brest', who, { ignoreMaintenance: true }))).toBe('FLO_TENANT_UNAVAILABLE');
    await becomes('active', 'resolved');

    await fixture.flotilla.maintenance.down('brest', { retryAfter: 30 });
    await waitFor(async () => (await codeOf(runtime.runAs('brest', who))) === 'FLO_TENANT_UNAVAILABLE', { what: 'brest down' });
    // A job that must run during maintenance (a data fix, say) still can.
    expect(await runtime.runAs('brest', who, { ignoreMaintenance: true })).toBe('brest');
    await fixture.flotilla.maintenance.up('brest');
    await waitFor(async () => (await codeOf(runtime.runAs('brest', who))) === 'resolved', { what: 'brest up' });
  });

  it('survives into timers, setImmediate, nextTick, stream events and promise chains', async () => {
    const seen = await runtime.runAs('lyon', async () => {
      const slugs: string[] = [];
      const note = (resolve: () => void) => () => {
        slugs.push(currentTenant().slug);
        resolve();
      };
      await new Promise<void>((resolve) => setTimeout(note(resolve), 5));
      await new Promise<void>((resolve) => setImmediate(note(resolve)));
      await new Promise<void>((resolve) => process.nextTick(note(resolve)));
      await new Promise<void>((resolve, reject) => {
        const stream = Readable.from(['a', 'b']);
        stream.on('data', () => slugs.push(currentTenant().slug));
        stream.on('end', note(resolve));
        stream.on('error', reject);
      });
      slugs.push(await Promise.resolve().then(() => currentTenant().slug));
      return slugs;
    });
    expect(seen).toEqual(Array(7).fill('lyon'));
  });

  it('survives into pool callbacks on a connection another tenant opened (node-postgres #2533)', async () => {
    // The budget's only session, opened from lyon's scope.
    await runtime.runAs('lyon', who);
    const opened = runtime.stats().connections.opened;
    const seen = await runtime.runAs('nice', () => {
      return new Promise<string[]>((resolve, reject) => {
        runtime.pool().connect((error, client, release) => {
          if (error || !client) return reject(error);
          const inConnect = currentTenant().slug;
          client.query('SELECT slug FROM who', (queryError: Error | undefined, result: { rows: { slug: string }[] }) => {
            release();
            if (queryError) return reject(queryError);
            resolve([inConnect, currentTenant().slug, result.rows[0]!.slug]);
          });
        });
      });
    });
    expect(seen).toEqual(['nice', 'nice', 'nice']);
    expect(runtime.stats().connections.opened).toBe(opened);
    // The same through the raw session runtime.db.client hands over, still the one lyon opened.
    const viaClient = await runtime.runAs('nice', () =>
      runtime.db.client(
        (client) =>
          new Promise<string[]>((resolve, reject) => {
            client.query('SELECT slug FROM who', (queryError: Error | undefined, result: { rows: { slug: string }[] }) =>
              queryError ? reject(queryError) : resolve([currentTenant().slug, result.rows[0]!.slug]),
            );
          }),
      ),
    );
    expect(runtime.stats().connections.opened).toBe(opened);
    expect(viaClient).toEqual(['nice', 'nice']);
  });

  it("leaves nothing of one tenant's session to the next tenant that gets it: settings, role, temp tables, locks, listens, search_path", async () => {
    const lyonSchema = await runtime.runAs('lyon', () => currentTenant().schema);
    const left = await runtime.runAs('lyon', () =>
      runtime.db.client(async (client) => {
        await client.query('SET statement_timeout = 1234');
        await client.query("SELECT set_config('app.user_id', '42', false)");
        await client.query('CREATE TEMP TABLE scratch (secret text)');
        await client.query("INSERT INTO scratch VALUES ('lyon secret')");
        await client.query('SELECT pg_advisory_lock(4242)');
        await client.query('LISTEN lyon_events');
        await client.query(`SET ROLE "${role}"`);
        return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      }),
    );
    const opened = runtime.stats().connections.opened;
    const next = await runtime.runAs('nice', () =>
      runtime.db.client(async (client) => {
        const { rows } = await client.query(
          `SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS statement_timeout, current_setting('app.user_id', true) AS app_user,
                  current_user AS role, to_regclass('pg_temp.scratch') AS scratch, current_setting('search_path') AS search_path,
                  (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
                  (SELECT count(*)::int FROM pg_listening_channels()) AS listens, (SELECT slug FROM who) AS who`,
        );
        return { ...rows[0], schema: currentTenant().schema };
      }),
    );
    // The same server process: the session was handed over, not replaced.
    expect(next.pid).toBe(left);
    expect(runtime.stats().connections.opened).toBe(opened);
    expect(next).toMatchObject({ statement_timeout: '0', role: 'postgres', scratch: null, locks: 0, listens: 0, who: 'nice' });
    expect(next.search_path.replaceAll('"', '')).toBe(next.schema);
    expect(next.app_user === null || next.app_user === '').toBe(true);
    expect(next.search_path).not.toContain(lyonSchema);
  });

  it('does not hand on a session left inside a transaction: it is closed and the next tenant gets a new one', async () => {
    const left = await runtime.runAs('lyon', () =>
      runtime.db.client(async (client) => {
        await client.query('BEGIN');
        await client.query("SET LOCAL app.user_id = '7'");
        return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      }),
    );
    const next = await runtime.runAs('nice', () =>
      runtime.db.client(
        async (client) => (await client.query<{ pid: number; state: string }>("SELECT pg_backend_pid() AS pid, current_setting('app.user_id', true) AS state")).rows[0]!,
      ),
    );
    expect(next.pid).not.toBe(left);
    expect(next.state === null || next.state === '').toBe(true);
    expect(runtime.stats().connections.peak).toBe(1);
  });
});
