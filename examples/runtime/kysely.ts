import { type Generated, Kysely, PostgresDialect } from 'kysely';
import { currentTenant, type TenantRuntime } from 'flotilla/runtime';

interface Database {
  who: { id: number; slug: string };
  items: { id: Generated<number>; who_id: number; label: string };
}

/** One Kysely for every tenant: each query runs in the current tenant's database, within the runtime's budget. */
export function tenantDb(runtime: TenantRuntime): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: runtime.pool() }) });
}

/** Called inside a request (or runtime.runAs): reads and writes only that tenant's tables. */
export async function addItem(db: Kysely<Database>, label: string) {
  return db.transaction().execute(async (tx) => {
    const owner = await tx.selectFrom('who').select(['id', 'slug']).executeTakeFirstOrThrow();
    await tx.insertInto('items').values({ who_id: owner.id, label }).execute();
    const { count } = await tx
      .selectFrom('items')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    return { tenant: currentTenant().slug, owner: owner.slug, items: Number(count) };
  });
}
