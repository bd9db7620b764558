import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import type { AppliedMigration } from '../core/plan.js';
import type { HistoryUpdate } from '../core/schedule.js';
import { quoteIdent } from '../core/sql/quote.js';
import { TENANT_ROLE_LIKE } from './tenant-role.js';

export const HISTORY_TABLE = 'flotilla_migrations';

function table(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(HISTORY_TABLE)}`;
}

/** The tenant's own history table, inside its database or schema. */
export async function ensureHistoryTable(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${table(schema)} (
       version     text        NOT NULL,
       name        text        NOT NULL,
       checksum    text        NOT NULL,
       applied_at  timestamptz NOT NULL DEFAULT now(),
       applied_by  text        NOT NULL,
       duration_ms integer     NOT NULL,
       run_id      uuid        NOT NULL,
       statements  integer     NOT NULL,
       remaining   integer[]   NOT NULL DEFAULT '{}',
       PRIMARY KEY (version, name)
     )`,
  );
}

export async function historyExists(client: pg.ClientBase, schema: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [table(schema)]);
  return rows[0]?.present === true;
}

/** What planning needs of each applied migration (the rest of the row is for people reading the table). */
export async function readHistory(client: pg.ClientBase, schema: string): Promise<AppliedMigration[]> {
  await refuseUnsafeHistory(client, schema);
  const { rows } = await client.query<AppliedMigration>(`SELECT version, name, checksum, remaining FROM ${table(schema)}`);
  return rows;
}

export async function recordHistory(
  client: pg.ClientBase,
  schema: string,
  updates: readonly HistoryUpdate[],
  context: { runId: string; appliedBy: string; durations: ReadonlyMap<string, number> },
): Promise<void> {
  if (updates.length === 0) return;
  await refuseUnsafeHistory(client, schema);
  const m = updates.map((u) => u.migration);
  await client.query(
    `INSERT INTO ${table(schema)} AS h (version, name, checksum, applied_by, duration_ms, run_id, statements, remaining)
     SELECT v, n, c, $4, d, $5::uuid, s, r::integer[]
       FROM unnest($1::text[], $2::text[], $3::text[], $6::integer[], $7::integer[], $8::text[]) AS u(v, n, c, d, s, r)
     ON CONFLICT (version, name) DO UPDATE
       SET remaining = EXCLUDED.remaining, duration_ms = h.duration_ms + EXCLUDED.duration_ms`,
    [
      m.map((x) => x.version),
      m.map((x) => x.name),
      m.map((x) => x.checksum),
      context.appliedBy,
      context.runId,
      m.map((x) => Math.round(context.durations.get(x.id) ?? 0)),
      m.map((x) => x.statements.length),
      updates.map((u) => `{${u.remaining.join(',')}}`),
    ],
  );
}

/**
 * The history table must be the table Flotilla made, and nothing may run when
 * it is read or written (as Flotilla's own user, after verification): a schema
 * tenant's role owns the schema and could put a view or a table of its own in
 * its place, and any migration a trigger or rule on it. Refused, before it is
 * read or written: the transaction is rolled back.
 */
async function refuseUnsafeHistory(client: pg.ClientBase, schema: string): Promise<void> {
  const { rows } = await client.query<{ what: string }>(
    `SELECT CASE WHEN c.relkind <> 'r' THEN 'a relation of kind ' || c.relkind::text || ' in its place' ELSE 'an owner of the tenant''s' END AS what
       FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1) AND (c.relkind <> 'r' OR pg_catalog.pg_get_userbyid(c.relowner) LIKE $2)
     UNION ALL SELECT 'trigger ' || tgname FROM pg_catalog.pg_trigger WHERE tgrelid = pg_catalog.to_regclass($1) AND NOT tgisinternal
     UNION ALL SELECT 'rule ' || rulename FROM pg_catalog.pg_rewrite WHERE ev_class = pg_catalog.to_regclass($1) AND rulename <> '_RETURN'`,
    [table(schema), TENANT_ROLE_LIKE],
  );
  if (rows.length > 0) {
    throw new FlotillaError(
      'FLO_SCHEMA_ESCAPE',
      `Schema ${schema}: Flotilla's history table has ${rows.map((r) => r.what).join(', ')}; nothing was read or recorded, and the transaction was rolled back.`,
      {
        hint: "Remove what the migration does to flotilla_migrations (a trigger, a rule, a view or table in its place): the history table is Flotilla's. A tenant whose history was replaced is restored from a backup taken before that migration.",
        meta: { schema, hooks: rows.map((r) => r.what) },
      },
    );
  }
}
