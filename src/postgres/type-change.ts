import type pg from 'pg';
import type { Statement } from '../core/migration.js';
import type { AstNode } from '../core/sql/ast.js';
import { isNode, stringField, unwrap } from '../core/sql/ast.js';
import { deparseStatement } from '../core/sql/parser.js';
import type { Loss } from '../core/verification.js';

/** Conversions that keep every value (checked by type name; a length or precision limit is checked on the data). */
const WIDENING: Record<string, readonly string[]> = {
  smallint: ['integer', 'bigint', 'numeric', 'text'],
  integer: ['bigint', 'numeric', 'text'],
  bigint: ['numeric', 'text'],
  real: ['double precision'],
  'character varying': ['text'],
  character: ['text'],
  text: ['text'],
};

/**
 * Before `ALTER COLUMN … TYPE` runs: how many values of the tenant's rows would
 * not come back as they were when cast to the new type (with its USING
 * expression) and back — rounded, truncated, replaced by a constant. Read on the
 * data, in the statement's own transaction, so a cast that fails is left to the
 * statement itself to report.
 */
export async function typeChangeLosses(client: pg.ClientBase, statement: Statement, countAsTenant?: (sql: string) => Promise<number>): Promise<Omit<Loss, 'allowedBecause'>[]> {
  if (statement.kind !== 'AlterTableStmt') return [];
  const body = unwrap(statement.node);
  const relation = isNode(body.relation) ? body.relation : undefined;
  const cmds = (Array.isArray(body.cmds) ? body.cmds : []).filter(isNode).map((c) => (isNode(c.AlterTableCmd) ? c.AlterTableCmd : {}));
  const changes = cmds.filter((cmd) => cmd.subtype === 'AT_AlterColumnType' && isNode(cmd.def) && isNode(cmd.def.ColumnDef));
  if (!relation || changes.length === 0) return [];
  const losses: Omit<Loss, 'allowedBecause'>[] = [];
  const table = stringField(relation, 'relname') ?? '?';
  for (const cmd of changes) {
    const column = stringField(cmd, 'name');
    const def = (cmd.def as AstNode).ColumnDef as AstNode;
    if (!column) continue;
    const source: AstNode = isNode(def.raw_default) ? def.raw_default : { ColumnRef: { fields: [{ String: { sval: column } }] } };
    const select = deparseStatement({
      SelectStmt: {
        targetList: [
          { ResTarget: { name: 'converted', val: { TypeCast: { arg: source, typeName: def.typeName } } } },
          { ResTarget: { name: 'original', val: { ColumnRef: { fields: [{ String: { sval: column } }] } } } },
        ],
        fromClause: [{ RangeVar: { ...relation, inh: true } }],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      },
    });
    const typeOnly = deparseStatement({
      SelectStmt: {
        targetList: [{ ResTarget: { name: 't', val: { TypeCast: { arg: { A_Const: { isnull: true } }, typeName: def.typeName } } } }],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      },
    });
    const lossy = await guarded(client, statement, async () => {
      // As the tenant (a schema tenant's role), nothing of the migration's is evaluated here: not even the
      // new type, whose domain checks are the tenant's code. Every value is counted, widening or not.
      if (countAsTenant) {
        const { rows: old } = await client.query<{ full: string }>(
          `SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS full FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname = $2 AND NOT a.attisdropped`,
          [deparseRelation(relation), column],
        );
        if (!old[0]) return 0;
        return countAsTenant(`SELECT count(*) FROM (${select}) s WHERE (s.converted)::${old[0].full} IS DISTINCT FROM s.original`);
      }
      const { rows: types } = await client.query<{ base: string; full: string; new: string }>(
        // Every function named with its schema: a tenant's own function of that name cannot stand in for it.
        `SELECT pg_catalog.format_type(a.atttypid, NULL) AS base, pg_catalog.format_type(a.atttypid, a.atttypmod) AS full, (SELECT pg_catalog.pg_typeof(t)::pg_catalog.text FROM (${typeOnly}) s) AS new
           FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname = $2 AND NOT a.attisdropped`,
        [deparseRelation(relation), column],
      );
      const found = types[0];
      if (!found) return 0;
      // A widening with no USING keeps every value: no scan (a length or precision limit is not a widening).
      if (!isNode(def.raw_default) && WIDENING[found.base]?.includes(found.new) && found.base === found.full) return 0;
      // A database tenant's migration runs as this session's user anyway: its USING expression too.
      const { rows } = await client.query<{ count: string }>(`SELECT count(*) FROM (${select}) s WHERE (s.converted)::${found.full} IS DISTINCT FROM s.original`);
      return Number(rows[0]!.count);
    });
    if (lossy > 0) losses.push({ kind: 'values', code: 'FV704', table, column, before: lossy, after: null });
  }
  return losses;
}

/** The relation as SQL text (`"schema"."table"` or `"table"`), for a regclass cast. */
function deparseRelation(relation: AstNode): string {
  const schema = stringField(relation, 'schemaname');
  const name = stringField(relation, 'relname') ?? '';
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  return schema ? `${quote(schema)}.${quote(name)}` : quote(name);
}

/** Runs a check that may fail (a cast that does not exist): under a savepoint in a transaction; a failure counts as nothing found. */
async function guarded(client: pg.ClientBase, statement: Statement, check: () => Promise<number>): Promise<number> {
  const inTransaction = statement.nonTransactional === undefined;
  if (inTransaction) await client.query('SAVEPOINT flotilla_type_check');
  try {
    const result = await check();
    if (inTransaction) await client.query('RELEASE SAVEPOINT flotilla_type_check');
    return result;
  } catch {
    if (inTransaction) await client.query('ROLLBACK TO SAVEPOINT flotilla_type_check');
    return 0;
  }
}
