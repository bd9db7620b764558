import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedConfig } from '../../src/config/config.js';
import { quoteIdent } from '../../src/core/sql/quote.js';
import { Flotilla } from '../../src/flotilla.js';
import { corpusDir, hasCorpus } from '../support/corpus.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * Everything in a database outside the given schemas: schemas, relations, types
 * and functions. \`pg_toast\` is left out: PostgreSQL itself keeps every table's
 * out-of-line storage there, whichever schema the table is in; so are the
 * temporary schemas sessions get (verification hashes rows into temporary tables).
 */
const CATALOG_OUTSIDE = `
  SELECT 'schema' AS kind, nspname AS schema, nspname AS name FROM pg_namespace WHERE NOT nspname = ANY($1) AND nspname !~ '^pg_(toast_)?temp_'
  UNION ALL SELECT 'relation:' || c.relkind::text, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT n.nspname = ANY($1)
  UNION ALL SELECT 'type', n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE NOT n.nspname = ANY($1)
  UNION ALL SELECT 'function', n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE NOT n.nspname = ANY($1)
  ORDER BY 1, 2, 3`;

/** Ordinary tables (relkind 'r'; the corpus also has 2 partitioned parents), enums, and the events schema's tables. */
const COUNTS = `
  SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'flotilla_migrations')::int AS tables,
         (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'p')::int AS partitioned,
         (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typtype = 'e')::int AS enums,
         (SELECT count(*) FROM pg_tables WHERE schemaname = $2)::int AS event_tables,
         (SELECT count(*) FROM pg_indexes WHERE schemaname = $1)::int AS indexes`;

describe.skipIf(!hasCorpus)('the real trigger.dev corpus (820 migrations)', () => {
  let project: TestProject;
  let flotilla: Flotilla;

  beforeAll(async () => {
    project = await testProject();
    const config: ResolvedConfig = { ...project.config, migrationsDir: corpusDir() };
    flotilla = await Flotilla.open({ config });
  });
  afterAll(async () => {
    await flotilla?.close();
    await project?.cleanup();
  });

  it('applies the whole history to a new database tenant', async () => {
    const tenant = await flotilla.tenants.create({ slug: 'trigger-db', kind: 'database' });
    const [history] = await project.query(tenant.database, `SELECT count(*)::int AS n, count(*) FILTER (WHERE remaining <> '{}')::int AS unfinished FROM flotilla_migrations`);
    expect(history).toEqual({ n: 820, unfinished: 0 });
    const [counts] = await project.query(tenant.database, COUNTS, ['public', 'triggerdotdev_events']);
    expect(counts).toMatchObject({ tables: 83, partitioned: 2, enums: 48, event_tables: 1 });
    const invalid = await project.query(tenant.database, 'SELECT indexrelid::regclass::text AS name FROM pg_index WHERE NOT indisvalid');
    expect(invalid).toEqual([]);
  });

  it('applies the whole history to a new schema tenant, touching no schema it does not own', async () => {
    const database = project.config.tenants.schemaDatabase;
    const owned = [`${project.prefix}_trigger_sch`, `${project.prefix}_trigger_sch__triggerdotdev_events`];
    // A neighbour tenant first, so the shared database exists and holds someone else's objects.
    await flotilla.tenants.create({ slug: 'neighbour', kind: 'schema' });
    const before = await project.query(database, CATALOG_OUTSIDE, [[...owned, 'pg_toast']]);
    expect(before.some((r) => r.schema === `${project.prefix}_neighbour`)).toBe(true);

    const tenant = await flotilla.tenants.create({ slug: 'trigger-sch', kind: 'schema' });
    expect(tenant.schema).toBe(owned[0]);
    const after = await project.query(database, CATALOG_OUTSIDE, [[...owned, 'pg_toast']]);
    expect(after).toEqual(before);

    const [history] = await project.query(database, `SELECT count(*)::int AS n FROM ${quoteIdent(owned[0]!)}.flotilla_migrations`);
    expect(history).toEqual({ n: 820 });
    const [counts] = await project.query(database, COUNTS, owned);
    expect(counts).toMatchObject({ tables: 83, partitioned: 2, enums: 48, event_tables: 1 });
  });

  it('gives both kinds the same tables, columns and indexes', async () => {
    const shape = `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = $1 ORDER BY 1, 2`;
    const db = await project.query(`${project.prefix}_trigger_db`, shape, ['public']);
    const sch = await project.query(project.config.tenants.schemaDatabase, shape, [`${project.prefix}_trigger_sch`]);
    expect(sch).toEqual(db);
    expect(db.length).toBeGreaterThan(800);
  });

  it('applies nothing when run again', async () => {
    const report = await flotilla.upgrade.migrate({ tenants: ['trigger-db', 'trigger-sch'] });
    expect(report.outcomes.map((o) => [o.tenant, o.status])).toEqual([
      ['trigger-db', 'skipped'],
      ['trigger-sch', 'skipped'],
    ]);
    const status = await flotilla.status.fleet();
    expect(status.filter((s) => s.slug.startsWith('trigger')).map((s) => [s.version, s.applied, s.pending, s.problems])).toEqual([
      ['20260818120100', 820, 0, []],
      ['20260818120100', 820, 0, []],
    ]);
  });

  it('upgrades a tenant at migration 800 to 820 in one transaction, with the index builds after it', async () => {
    const first800 = join(project.dir, 'first-800');
    const set = await flotilla.lint.migrations();
    for (const m of set.migrations.slice(0, 800)) await cp(join(corpusDir(), m.path), join(first800, m.path));
    const older = await Flotilla.open({ config: { ...flotilla.config, databaseUrl: project.config.databaseUrl, migrationsDir: first800 } });
    try {
      await older.tenants.create({ slug: 'trigger-800', kind: 'schema' });
    } finally {
      await older.close();
    }
    const report = await flotilla.upgrade.migrate({ tenants: ['trigger-800'] });
    const outcome = report.outcomes[0]!;
    expect(outcome.status).toBe('succeeded');
    if (outcome.status !== 'succeeded') return;
    expect(outcome.migrations).toHaveLength(20);
    expect([outcome.transactions, outcome.outsideTransaction, outcome.splits]).toEqual([1, 10, []]);
    expect(outcome.rewritten).toBeGreaterThan(0);
    const [history] = await project.query(
      project.config.tenants.schemaDatabase,
      `SELECT count(*)::int AS n FROM ${quoteIdent(`${project.prefix}_trigger_800`)}.flotilla_migrations WHERE remaining = '{}'`,
    );
    expect(history).toEqual({ n: 820 });
  });
});
