import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';

/** Every schema tenant's role is named with this prefix (and the tenant's id). */
export const TENANT_ROLE_PREFIX = 'flotilla_tenant_';

/** A LIKE pattern matching the names of tenants' roles. */
export const TENANT_ROLE_LIKE = `${TENANT_ROLE_PREFIX.replaceAll('_', '\\_')}%`;

/**
 * A schema tenant's own role: it owns the tenant's schemas and what is in them,
 * and has no privilege on any other tenant's, so the tenant's migrations, run
 * under it, cannot reach another tenant whatever SQL they build at run time.
 */
export async function roleExists(client: pg.ClientBase, role: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  return rows.length > 0;
}

/**
 * Creates the role (no login) and lets this session's user act as it. It gets
 * no privilege on the database itself: the schemas a tenant's migration creates
 * are made by Flotilla and given to it.
 */
export async function createTenantRole(client: pg.ClientBase, role: string): Promise<void> {
  await client.query(`CREATE ROLE ${quoteIdent(role)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT; GRANT ${quoteIdent(role)} TO CURRENT_USER`);
}

/** Whether the tenant's schema already belongs to its role (then what is in it does too: it was given once, and the role made the rest). */
export async function ownsSchema(client: pg.ClientBase, role: string, schema: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1 AND nspowner = (SELECT oid FROM pg_roles WHERE rolname = $2)`, [schema, role]);
  return rows.length > 0;
}

/**
 * Drops the role. What it still owns in the tenant's database is handed to this
 * session's user first (never dropped with it: the tenant's schemas are removed
 * by their own claims), and its privileges revoked.
 */
export async function dropTenantRole(client: pg.ClientBase, role: string): Promise<void> {
  if (!(await roleExists(client, role))) return;
  await client.query(`REASSIGN OWNED BY ${quoteIdent(role)} TO CURRENT_USER; DROP OWNED BY ${quoteIdent(role)}; DROP ROLE ${quoteIdent(role)}`);
}

/**
 * Gives the role what the tenant's schemas hold and it does not own yet: the
 * schemas themselves, tables, views, sequences of their own, types, domains and
 * functions (made before roles existed, by a restore, or by Flotilla itself such
 * as the history table). One catalog query when there is nothing to change.
 */
export async function ownTenantSchemas(client: pg.ClientBase, role: string, schemas: readonly string[]): Promise<number> {
  const { rows } = await client.query<{ sql: string }>(
    `WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1)
     SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $1) AS sql, 0 AS o FROM pg_namespace n WHERE n.nspname = ANY($2) AND n.nspowner <> (SELECT oid FROM r)
     UNION ALL
     SELECT format('ALTER %s %I.%I OWNER TO %I', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname, $1), 1
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relowner <> (SELECT oid FROM r)
        -- Flotilla's history table stays Flotilla's: a tenant may not put a trigger on it.
        AND c.relname <> 'flotilla_migrations' AND NOT (c.relkind = 'S' AND c.relname LIKE 'flotilla_migrations%')
        -- A sequence owned by a column follows its table.
        AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
     UNION ALL
     SELECT format('ALTER %s %I.%I OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname, $1), 2
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = ANY($2) AND t.typowner <> (SELECT oid FROM r) AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
        AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.classid = 'pg_type'::regclass AND d.deptype IN ('e', 'i'))
     UNION ALL
     SELECT format('ALTER ROUTINE %I.%I(%s) OWNER TO %I', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), $1), 3
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ANY($2) AND p.proowner <> (SELECT oid FROM r) AND p.prokind IN ('f', 'p')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e')
     ORDER BY 2`,
    [role, [...schemas]],
  );
  for (const { sql } of rows) await client.query(sql);
  return rows.length;
}

/**
 * Runs a schema tenant's statements as its role, in a way they cannot leave:
 * each one is executed by a SECURITY DEFINER function owned by the role, inside
 * which PostgreSQL refuses any change of role or session authorization, however
 * the SQL is built (a DO block, a function, `set_config('role', …)`). The
 * function lives in this session's temporary schema for one transaction (or one
 * statement outside any), and each call checks it is still the one made here.
 */
export class TenantRunner {
  private static readonly sessions = new WeakMap<pg.ClientBase, Map<string, TenantRunner>>();

  private constructor(
    private readonly client: pg.ClientBase,
    private readonly name: string,
    private readonly check: readonly [number, number, string],
    private readonly counter: { name: string; check: readonly [number, number, string] },
  ) {}

  /**
   * The role's function in this session, made once (outside any transaction, so
   * that it outlives a rolled-back one) under a name no migration can guess.
   */
  static async of(client: pg.ClientBase, role: string): Promise<TenantRunner> {
    const known = TenantRunner.sessions.get(client) ?? new Map<string, TenantRunner>();
    TenantRunner.sessions.set(client, known);
    const cached = known.get(role);
    if (cached) return cached;
    const name = await TenantRunner.make(client, role, 'void', RUNNER_BODY);
    const counter = await TenantRunner.make(client, role, 'bigint', COUNTER_BODY);
    const runner = new TenantRunner(client, name.name, name.check, counter);
    known.set(role, runner);
    return runner;
  }

  /** One SECURITY DEFINER function of the role, callable by it alone, and what identifies it. */
  private static async make(client: pg.ClientBase, role: string, returns: string, body: string): Promise<{ name: string; check: readonly [number, number, string] }> {
    const name = `pg_temp.flotilla_run_${randomBytes(8).toString('hex')}`;
    // Only its role (and Flotilla's user) may call it: another tenant sharing this pooled session may not.
    await client.query(
      `CREATE FUNCTION ${name}(sql text) RETURNS ${returns} LANGUAGE plpgsql SECURITY DEFINER AS ${body}; REVOKE ALL ON FUNCTION ${name}(text) FROM PUBLIC; ALTER FUNCTION ${name}(text) OWNER TO ${quoteIdent(role)}; REVOKE ALL ON FUNCTION ${name}(text) FROM PUBLIC`,
    );
    const { rows } = await client.query<{ oid: number; owner: number; src: string }>(
      `SELECT p.oid::int AS oid, p.proowner::int AS owner, pg_catalog.md5(p.prosrc) AS src FROM pg_catalog.pg_proc p WHERE p.oid = $1::pg_catalog.regprocedure`,
      [`${name}(text)`],
    );
    const found = rows[0]!;
    return { name, check: [found.oid, found.owner, found.src] };
  }

  /** Counts, as the role, the rows a query of the migration's own expressions returns (`SELECT count(*) …`). */
  async count(sql: string): Promise<number> {
    const [oid, owner, src] = this.counter.check;
    const tag = dollarTag(sql);
    const { rows } = await this.client.query<{ n: string }>(
      `SELECT ${this.counter.name}(${tag}${sql}${tag}) AS n FROM pg_catalog.pg_proc WHERE oid = $1 AND prosecdef AND proowner = $2 AND pg_catalog.md5(prosrc) = $3`,
      [oid, owner, src],
    );
    if (rows.length !== 1) throw new Error('the tenant runner was changed');
    return Number(rows[0]!.n);
  }

  /** Forgets the role's function in this session (gone with a rolled-back transaction, a dropped role, or changed). */
  static forget(client: pg.ClientBase, role: string): void {
    TenantRunner.sessions.get(client)?.delete(role);
  }

  /**
   * Runs one statement as the role; false when the function was changed
   * meanwhile (nothing ran). The statement is written into the query as a
   * dollar-quoted string, so that `pg_stat_activity` shows what runs.
   */
  async run(sql: string): Promise<boolean> {
    const [oid, owner, src] = this.check;
    const tag = dollarTag(sql);
    const result = await this.client.query(
      `SELECT ${this.name}(${tag}${sql}${tag}) FROM pg_catalog.pg_proc WHERE oid = $1 AND prosecdef AND proowner = $2 AND pg_catalog.md5(prosrc) = $3`,
      [oid, owner, src],
    );
    return result.rowCount === 1;
  }
}

const RUNNER_BODY = `$flotilla_run$ BEGIN EXECUTE sql; END $flotilla_run$`;
const COUNTER_BODY = `$flotilla_run$ DECLARE n bigint; BEGIN EXECUTE sql INTO n; RETURN n; END $flotilla_run$`;

/** A dollar-quote tag the text does not hold. */
function dollarTag(sql: string): string {
  let tag = '$flotilla_sql$';
  while (sql.includes(tag)) tag = `$flotilla_${randomBytes(4).toString('hex')}$`;
  return tag;
}

/** Makes the role the owner of the schema (an empty new one: nothing else to give). */
export async function giveSchemaTo(client: pg.ClientBase, schema: string, role: string): Promise<void> {
  await client.query(`ALTER SCHEMA ${quoteIdent(schema)} OWNER TO ${quoteIdent(role)}`);
}

/**
 * A verify query's answer, counted by the tenant's role: its rows, and of them
 * those that are a single `true` (the query runs as the tenant's own code).
 */
export async function verifyAnswer(runner: TenantRunner, sql: string): Promise<{ rows: number; fine: number }> {
  return {
    rows: await runner.count(`SELECT count(*) FROM (${sql}\n) v`),
    fine: await runner.count(
      `SELECT count(*) FROM (${sql}\n) v WHERE (SELECT count(*) FROM pg_catalog.jsonb_object_keys(pg_catalog.to_jsonb(v))) = 1 AND (SELECT e.value FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(v)) e) = 'true'::jsonb`,
    ),
  };
}
