import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { tenantRole } from '../../src/tenancy/placement.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
let flotilla: Flotilla;

/** Owners of the schema and of every table, sequence and function in it (Flotilla's history table aside). */
async function owners(database: string, schema: string): Promise<string[]> {
  const rows = await project.query<{ owner: string }>(
    database,
    `SELECT DISTINCT owner FROM (
       SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = $1
       UNION ALL SELECT c.relowner::regrole::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname NOT LIKE 'flotilla_migrations%'
       UNION ALL SELECT p.proowner::regrole::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1) o`,
    [schema],
  );
  return rows.map((r) => r.owner);
}

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_base.sql':
      "CREATE TABLE members (id serial PRIMARY KEY, name text);\nCREATE FUNCTION touch() RETURNS int LANGUAGE sql AS 'SELECT 1';\nINSERT INTO members (name) VALUES ('a');\nCREATE TABLE ev (id int, at date) PARTITION BY RANGE (at);\nCREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');",
  });
  flotilla = await Flotilla.open({ config: project.config });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe("a schema tenant's own role", () => {
  it('is made at provisioning, recorded as the tenant’s, and owns its schema and everything its migrations made', async () => {
    const tenant = await flotilla.tenants.create({ slug: 'alpha', kind: 'schema' });
    const role = tenantRole(tenant);
    expect((await flotilla.tenants.storage(tenant.slug)).map((c) => `${c.kind}:${c.name}`)).toContain(`role:${role}`);
    expect(await owners(tenant.database, tenant.schema)).toEqual([role]);
  });

  it('is given to a tenant made before roles existed at its next upgrade, with what its schema holds', async () => {
    const tenant = await flotilla.tenants.create({ slug: 'beta', kind: 'schema' });
    const role = tenantRole(tenant);
    // As an older Flotilla left it: no role, everything owned by the connecting user.
    await project.query(tenant.database, `REASSIGN OWNED BY "${role}" TO CURRENT_USER; DROP OWNED BY "${role}"`);
    await project.query('postgres', `DROP ROLE "${role}"`);
    await project.query(`${project.prefix}_control`, `DELETE FROM flotilla.storage WHERE kind = 'role' AND name = $1`, [role]);
    expect(await owners(tenant.database, tenant.schema)).not.toContain(role);
    await project.write({
      '0002_more.sql': 'ALTER TABLE members ADD COLUMN email text;\nALTER TABLE ev ADD COLUMN what text;',
      '0002_more.verify.sql': 'SELECT count(*) >= 0 FROM members -- any count will do',
    });
    const report = await flotilla.upgrade.migrate({ tenants: ['beta'] });
    expect(report.outcomes[0]!.status).toBe('succeeded');
    expect(await owners(tenant.database, tenant.schema)).toEqual([role]);
    expect((await flotilla.tenants.storage(tenant.slug)).some((c) => c.kind === 'role' && c.name === role)).toBe(true);
  });

  it("cannot call another tenant's function left in a shared pooled session", async () => {
    await flotilla.tenants.create({ slug: 'gamma', kind: 'schema' });
    for (const slug of ['alpha', 'beta', 'gamma']) await flotilla.tenants.withClient(slug, (c) => c.query("INSERT INTO members (name) VALUES ('b'), ('c')"));
    const counts = async () =>
      Promise.all(
        ['alpha', 'beta', 'gamma'].map(async (slug) => flotilla.tenants.withClient(slug, async (c) => Number((await c.query('SELECT count(*) AS n FROM members')).rows[0].n))),
      );
    const before = await counts();
    // Each tenant's migration looks for every runner function in its session (the other tenant's, upgraded
    // first in the same pooled session, among them) and asks it to empty every other tenant's members.
    await project.write({
      '0003_calls.sql': `DO $$ DECLARE f text; s text; BEGIN
        FOR f IN SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = pg_my_temp_schema() AND proname LIKE 'flotilla_run_%' LOOP
          FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE '${project.prefix}%' AND nspname <> current_schema() LOOP
            BEGIN EXECUTE format('SELECT %s(%L)', split_part(f, '(', 1), format('DELETE FROM %I.members', s)); EXCEPTION WHEN others THEN NULL; END;
          END LOOP;
        END LOOP; END $$;`,
    });
    const report = await flotilla.upgrade.migrate({ tenants: ['beta', 'gamma'] });
    expect(report.outcomes.map((o) => (o.status === 'failed' ? o.error.message : o.status))).toEqual(['succeeded', 'succeeded']);
    expect(await counts()).toEqual(before);
  });

  it("refuses a statement that reaches another tenant's schema with PostgreSQL's permission error", async () => {
    const alpha = await flotilla.tenants.get('alpha');
    await project.write({ '0004_reach.sql': `DO $$ BEGIN EXECUTE 'DELETE FROM ' || quote_ident('${alpha.schema}') || '.members'; END $$;` });
    const report = await flotilla.upgrade.migrate({ tenants: ['beta'] });
    const outcome = report.outcomes[0]!;
    expect(outcome.status).toBe('failed');
    if (outcome.status === 'failed') expect(outcome.error.message).toMatch(/permission denied for schema/);
    expect(await project.query(alpha.database, `SELECT count(*)::int AS n FROM "${alpha.schema}".members`)).toEqual([{ n: 3 }]);
  });
});
