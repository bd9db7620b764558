import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TenantRuntime } from '../../src/runtime/index.js';
import type { RuntimeFixture } from '../support/runtime.js';
import { runtimeFixture } from '../support/runtime.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

let fixture: RuntimeFixture;
let runtime: TenantRuntime;
let example: typeof import('../../examples/runtime/kysely.js');
let tmp: string;

beforeAll(async () => {
  fixture = await runtimeFixture([
    { slug: 'paris', kind: 'database' },
    { slug: 'nice', kind: 'schema' },
    { slug: 'lille', kind: 'schema' },
  ]);
  // Two sessions for three tenants: the same sessions serve each tenant in turn.
  runtime = await fixture.runtime({ budget: { maxConnections: 2, maxPerTenant: 1 } });
  // The example as a user writes it (importing 'flotilla/runtime'), pointed at the sources.
  tmp = await mkdtemp(join(REPO, 'test/runtime/.example-'));
  const source = (await readFile(join(REPO, 'examples/runtime/kysely.ts'), 'utf8')).replaceAll("'flotilla/runtime'", `'${join(REPO, 'src/runtime/index.js')}'`);
  await writeFile(join(tmp, 'kysely.ts'), source);
  example = await import(join(tmp, 'kysely.ts'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
  await fixture?.cleanup();
});

describe('Kysely through the runtime', () => {
  it("runs each tenant's transactions in its own tables, sessions shared between tenants", async () => {
    const db = example.tenantDb(runtime);
    const slugs = ['paris', 'nice', 'lille'];
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => runtime.runAs(slugs[i % 3]!, () => example.addItem(db, `item ${i}`))));
    for (const [i, result] of results.entries()) {
      expect(result.tenant).toBe(slugs[i % 3]);
      expect(result.owner).toBe(slugs[i % 3]);
    }
    // Each tenant started with 3 items and got 10 more, in its own table.
    for (const slug of slugs) {
      const count = await runtime.runAs(slug, () =>
        db
          .selectFrom('items')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow(),
      );
      expect({ slug, n: Number(count.n) }).toEqual({ slug, n: 13 });
    }
    expect(runtime.stats().connections.peak).toBeLessThanOrEqual(2);
    await db.destroy();
  });

  it('rolls a failed transaction back in that tenant alone', async () => {
    const db = example.tenantDb(runtime);
    const count = () => runtime.runAs('nice', () => runtime.db.query<{ n: string }>('SELECT count(*) AS n FROM items'));
    const before = await count();
    await expect(
      runtime.runAs('nice', () =>
        db.transaction().execute(async (tx) => {
          await tx.insertInto('items').values({ who_id: 1, label: 'kept?' }).execute();
          throw new Error('the handler failed');
        }),
      ),
    ).rejects.toThrow('the handler failed');
    expect((await count()).rows[0]!.n).toBe(before.rows[0]!.n);
  });
});
