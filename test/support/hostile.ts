import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TenantOutcome } from '../../src/index.js';
import { withClient } from '../../src/postgres/connect.js';
import type { TestProject } from './project.js';
import { serverUrl, testProject } from './project.js';

/**
 * A suite of hostile migrations, each run on a database tenant and a schema
 * tenant holding rows in tables with foreign keys, a trigger, a rule, a table
 * without a key and large objects. Every table of every schema of both
 * databases is compared before and after, with the large objects. The outcome
 * must be one of: refused by lint; rolled back (verification, or PostgreSQL
 * itself); or applied with the change reported and a backup taken first. Never
 * a change with none of these; never a change outside the tenant's own schemas.
 */
export type Outcome = 'lint' | 'rollback' | 'backup' | 'clean';

export interface HostileCase {
  readonly name: string;
  /** The issue's class of mistake (1–8), or a legitimate migration that must go through. */
  readonly class: number | 'legit';
  /** Migrations after the base one (`0002_….sql` …); `neighbour` is another schema tenant's schema. */
  readonly files: (context: { neighbour: string }) => Record<string, string>;
  readonly expect: Outcome | { database: Outcome; schema: Outcome };
  readonly values?: 'report' | 'refuse';
}

export const BASE = `CREATE DOMAIN positive_amount AS numeric(10,2) CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE members (id int PRIMARY KEY, name text NOT NULL, email text, status mood NOT NULL DEFAULT 'calm', score numeric(6,2));
CREATE TABLE loans (id int PRIMARY KEY, member_id int NOT NULL REFERENCES members (id) ON DELETE CASCADE, amount positive_amount NOT NULL);
CREATE TABLE notes (member_id int, body text);
CREATE TABLE attachments (id int PRIMARY KEY, member_id int REFERENCES members (id), content oid);
CREATE TABLE audit_log (id serial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION forget_notes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM notes WHERE member_id = NEW.id; RETURN NEW; END $$;
CREATE TRIGGER members_forget AFTER UPDATE OF status ON members FOR EACH ROW EXECUTE FUNCTION forget_notes();
CREATE FUNCTION cleanup_members() RETURNS void LANGUAGE sql AS $$ DELETE FROM members WHERE id > 8 $$;
CREATE RULE audit_prunes AS ON INSERT TO audit_log DO ALSO DELETE FROM notes WHERE body LIKE 'old%';
CREATE VIEW member_cleanup AS SELECT cleanup_members()::text AS done;
CREATE MATERIALIZED VIEW member_cleanup_mv AS SELECT cleanup_members()::text AS done WITH NO DATA;
CREATE TABLE events (id int NOT NULL, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
`;

const SEED = `INSERT INTO members (id, name, email, score) SELECT i, 'member ' || i, 'm' || i || '@example.com', i * 1.25 FROM generate_series(1, 10) i;
INSERT INTO loans (id, member_id, amount) SELECT i, 1 + i % 10, i * 10.5 FROM generate_series(1, 20) i;
INSERT INTO audit_log (what) VALUES ('created'), ('seeded'), ('checked');
INSERT INTO notes VALUES (1, 'old note'), (1, 'old note'), (2, 'call back'), (3, 'old lead'), (4, 'vip'), (5, 'n5'), (6, 'n6'), (7, 'n7'), (8, 'n8'), (9, 'n9');
INSERT INTO attachments SELECT i, i, lo_from_bytea(0, convert_to('file ' || i, 'UTF8')) FROM generate_series(1, 3) i;
INSERT INTO events SELECT i, date '2023-06-01' + i * 60, 'event ' || i FROM generate_series(1, 6) i;`;

/** Columns of each table (`schema.table`) at the first look: what a later look compares. */
type Shape = Map<string, string[]>;

/**
 * Every table's contents (over the columns it had at the first look: a column
 * added since is not a change, one gone is) and every large object of a
 * database. Flotilla's own history table is left out.
 */
async function state(database: string, shape?: Shape): Promise<{ data: Record<string, string>; shape: Shape }> {
  return withClient(serverUrl(), database, async (client) => {
    const { rows } = await client.query<{ schema: string; table: string; columns: string[] }>(
      `SELECT n.nspname AS schema, c.relname AS table, ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum) AS columns
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relname <> 'flotilla_migrations' ORDER BY 1, 2`,
    );
    const data: Record<string, string> = {};
    const seen: Shape = new Map();
    for (const { schema, table, columns } of rows) {
      const key = `${database}:${schema}.${table}`;
      const wanted = shape?.get(key) ?? columns;
      seen.set(key, columns);
      const missing = wanted.filter((c) => !columns.includes(c));
      if (missing.length > 0) {
        data[key] = `columns gone: ${missing.join(', ')}`;
        continue;
      }
      const q = (name: string) => `"${name.replaceAll('"', '""')}"`;
      const row = `ROW(${wanted.map((c) => `t.${q(c)}`).join(', ')})::text`;
      const { rows: found } = await client.query<{ n: string; h: string | null }>(
        `SELECT count(*) AS n, md5(string_agg(${row}, E'\\n' ORDER BY ${row})) AS h FROM ${q(schema)}.${q(table)} t`,
      );
      data[key] = `${found[0]!.n}:${found[0]!.h ?? ''}`;
    }
    const objects = await client.query<{ o: string; h: string }>(`SELECT oid::text AS o, md5(lo_get(oid)) AS h FROM pg_largeobject_metadata ORDER BY 1`);
    for (const r of objects.rows) data[`large object ${r.o}`] = r.h;
    return { data, shape: seen };
  });
}

/** What was there before and is not the same now (a table or large object made since is an addition, not a change). */
function changedKeys(before: Record<string, string>, after: Record<string, string>): string[] {
  return Object.keys(before).filter((k) => before[k] !== after[k]);
}

export interface Tally {
  readonly case: string;
  readonly class: number | 'legit';
  readonly kind: 'database' | 'schema';
  readonly outcome: Outcome;
}

/** Runs the cases in order, one new pair of tenants each; prints a tally per outcome at the end. */
export function hostileSuite(title: string, id: string, cases: readonly HostileCase[]): void {
  let project: TestProject;
  let base: Flotilla;
  let _baseDir: string;
  const tally: Tally[] = [];

  beforeAll(async () => {
    project = await testProject();
    await project.write({ '0001_base.sql': BASE });
    _baseDir = project.migrationsDir;
    base = await Flotilla.open({ config: project.config });
    await base.tenants.create({ slug: 'neighbour', kind: 'schema' });
    await base.tenants.withClient('neighbour', (c) => c.query(SEED));
  });
  afterAll(async () => {
    const counts = new Map<string, number>();
    for (const t of tally) counts.set(t.outcome, (counts.get(t.outcome) ?? 0) + 1);
    console.log(`[flotilla hostile ${id}] ${tally.length} runs: ${[...counts].map(([o, n]) => `${o} ${n}`).join(', ')}`);
    // One line per run, for SAFETY.md's table (npm test -- hostile, then count these lines).
    for (const t of tally) console.log(`[flotilla hostile run] ${JSON.stringify(t)}`);
    await base?.close();
    await project?.cleanup();
  });

  describe(title, () => {
    for (const [i, hostile] of cases.entries()) {
      it(`${hostile.class === 'legit' ? 'legitimate' : `class ${hostile.class}`}: ${hostile.name}`, async () => {
        const slug = (kind: string) => `${id}-c${i + 1}-${kind}`;
        const database = await base.tenants.create({ slug: slug('db'), kind: 'database' });
        const schema = await base.tenants.create({ slug: slug('sc'), kind: 'schema' });
        for (const tenant of [database, schema]) await base.tenants.withClient(tenant.slug, (c) => c.query(SEED));
        const neighbour = (await base.tenants.get('neighbour')).schema;
        const dir = await mkdtemp(join(tmpdir(), `${project.prefix}-case-`));
        await writeFile(join(dir, '0001_base.sql'), BASE);
        for (const [name, sql] of Object.entries(hostile.files({ neighbour }))) await writeFile(join(dir, name), sql);
        const flotilla = await Flotilla.open({ config: { ...project.config, migrationsDir: dir, verify: { ...project.config.verify, values: hostile.values ?? 'report' } } });
        try {
          const first = { database: await state(database.database), shared: await state(schema.database) };
          const report = await flotilla.upgrade.migrate({ tenants: [database.slug, schema.slug] });
          const after = { database: (await state(database.database, first.database.shape)).data, shared: (await state(schema.database, first.shared.shape)).data };
          const before = { database: first.database.data, shared: first.shared.data };
          const outcomes = new Map(report.outcomes.map((o) => [o.tenant, o]));
          const ownSchemas = new Set([schema.schema, ...[...(await flotilla.tenants.storage(schema.slug))].filter((c) => c.kind === 'schema').map((c) => c.name)]);
          const sharedChanges = changedKeys(before.shared, after.shared);
          // Nothing outside the schema tenant's own schemas may change, whatever happened to it.
          const outside = sharedChanges.filter((key) => !ownSchemas.has(key.split(':')[1]?.split('.')[0] ?? ''));
          expect(outside, `changed outside ${schema.slug}'s own schemas`).toEqual([]);
          const runs = [
            { kind: 'database' as const, tenant: database.slug, changed: changedKeys(before.database, after.database) },
            { kind: 'schema' as const, tenant: schema.slug, changed: sharedChanges },
          ];
          for (const run of runs) {
            const outcome = outcomes.get(run.tenant)!;
            const got = await classify(flotilla, outcome, run.changed);
            tally.push({ case: hostile.name, class: hostile.class, kind: run.kind, outcome: got });
            const wanted = typeof hostile.expect === 'string' ? hostile.expect : hostile.expect[run.kind];
            expect(got, `${run.kind} tenant: ${summary(outcome)}; changed: ${run.changed.join(', ') || 'nothing'}`).toBe(wanted);
          }
        } finally {
          await flotilla.close();
          await rm(dir, { recursive: true, force: true });
        }
      });
    }
  });
}

function summary(outcome: TenantOutcome): string {
  return outcome.status === 'failed' ? `${outcome.error.code} ${outcome.error.message}` : outcome.status;
}

/**
 * What happened, judged by the data: unchanged and refused by lint, unchanged
 * and rolled back, unchanged and applied, or changed with a backup taken first
 * (and the change said: a loss allowed, values overwritten, or the stop of a
 * statement outside the transaction). A change with none of these fails the test.
 */
async function classify(flotilla: Flotilla, outcome: TenantOutcome, changed: readonly string[]): Promise<Outcome> {
  if (changed.length === 0) {
    if (outcome.status === 'failed') return outcome.error.code === 'FLO_LINT_REFUSED' ? 'lint' : 'rollback';
    return 'clean';
  }
  const backups = (await flotilla.backups.list(outcome.tenant)).filter((b) => b.reason?.startsWith('before migrate'));
  const backup = backups[backups.length - 1];
  const kept = backup
    ? backup.strategy === 'snapshot' ||
      (await stat(backup.location).then(
        (s) => s.size > 0,
        () => false,
      ))
    : false;
  const said =
    outcome.status === 'failed'
      ? outcome.error.code === 'FLO_DATA_LOSS'
      : outcome.status === 'succeeded' && ((outcome.verification?.allowedLosses.length ?? 0) > 0 || (outcome.verification?.overwrites.length ?? 0) > 0);
  if (backup && kept && said) return 'backup';
  throw new Error(`data changed with neither a refusal, a rollback nor a backup and a report: ${summary(outcome)}; backup ${backup?.id ?? 'none'}; changed ${changed.join(', ')}`);
}
