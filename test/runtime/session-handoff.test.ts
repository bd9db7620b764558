import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTenant } from '../../src/runtime/index.js';
import type { TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';

/**
 * One session shared by two tenants (a ceiling of 1): what one tenant's code
 * does with the session, or keeps of it, never reaches the other's turn.
 */
let fixture: RuntimeFixture;
let runtime: TenantRuntime;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'lyon', kind: 'schema' },
    { slug: 'nice', kind: 'schema' },
  ]);
  runtime = await fixture.runtime({ budget: { maxConnections: 1, maxPerTenant: 1 } });
}, 120_000);
afterAll(() => fixture?.cleanup());

const who = async () => (await runtime.db.query<{ slug: string }>('SELECT slug FROM who')).rows[0]!.slug;

describe('a session handed from one tenant to the next', () => {
  it('refuses every use of a session object kept after it was given back', async () => {
    let kept: pg.Client | undefined;
    await runtime.runAs('lyon', () =>
      runtime.db.client(async (client) => {
        kept = client;
      }),
    );
    // nice now holds the only session; lyon's kept object must not reach it.
    await runtime.runAs('nice', async () => {
      await runtime.db.client(async () => {
        await expect(Promise.resolve().then(() => kept!.query('SHOW search_path'))).rejects.toMatchObject({ code: 'FLO_NO_TENANT_SCOPE' });
      });
    });
    const client = await runtime.runAs('lyon', () => runtime.pool().connect());
    client.release();
    expect(() => client.query('SELECT 1')).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
  });

  it('closes a session given back with a query still running, so the next tenant gets a fresh one', async () => {
    const opened = runtime.stats().connections.opened;
    // lyon starts a transaction and returns without waiting for it.
    await runtime.runAs('lyon', () =>
      runtime.db.client(async (client) => {
        void client.query('BEGIN').catch(() => undefined);
        void client.query("INSERT INTO items (who_id, label) VALUES (1, 'lyon, unfinished')").catch(() => undefined);
      }),
    );
    // nice's insert commits in nice's own table, not inside lyon's open transaction.
    await runtime.runAs('nice', () => runtime.db.query("INSERT INTO items (who_id, label) VALUES (1, 'nice, committed')"));
    expect(runtime.stats().connections.opened).toBeGreaterThan(opened);
    const labels = await fixture.project.query<{ label: string }>(
      `${fixture.project.prefix}_schemas`,
      `SELECT label FROM "${fixture.project.prefix}_nice".items WHERE label LIKE 'nice, %'`,
    );
    expect(labels.map((r) => r.label)).toEqual(['nice, committed']);
    const lyon = await fixture.project.query(`${fixture.project.prefix}_schemas`, `SELECT 1 FROM "${fixture.project.prefix}_lyon".items WHERE label = 'lyon, unfinished'`);
    expect(lyon).toEqual([]);
  });

  it("runs a query object's events in its caller's scope, not in that of the tenant that opened the session", async () => {
    // lyon opens the session (its socket is created while lyon's request runs)...
    expect(await runtime.runAs('lyon', who)).toBe('lyon');
    // ...and nice's row events, fired from that socket, still see nice.
    const seen = await runtime.runAs('nice', () =>
      runtime.db.client(
        (client) =>
          new Promise<string[]>((resolve, reject) => {
            const tenants: string[] = [];
            const query = client.query(new pg.Query('SELECT slug FROM who'));
            query.on('row', (row: { slug: string }) => tenants.push(`${findTenant()?.slug}:${row.slug}`));
            query.on('end', () => resolve(tenants));
            query.on('error', reject);
          }),
      ),
    );
    expect(seen).toEqual(['nice:nice']);
  });
});
