import { describe, expect, it } from 'vitest';
import type { ParsedMigration } from '../../src/core/migration.js';
import { plan } from '../../src/core/plan.js';
import type { Loss, Segment, TableFingerprint } from '../../src/core/verification.js';
import { affectedRelations, allowanceFor, describeLoss, planRenames, planStatements, tableLosses } from '../../src/core/verification.js';
import { migration } from '../support/migrations.js';

function planOf(...migrations: ParsedMigration[]) {
  const result = plan(migrations, []);
  if (!result.ok) throw new Error('plan failed');
  return result.plan;
}

const fp = (table: string, rows: number, columns: Record<string, number>): TableFingerprint => ({ schema: 'public', table, rows, columns });

/** What the verifier finds in one table across a segment of statements (counts only), with the allow it accepts. */
function losses(before: TableFingerprint, after: TableFingerprint | null, segment: Segment): Loss[] {
  const renames = planRenames(segment.statements);
  const comparison = { before, after, missingRows: null, changedColumns: null, changedRows: 0, keyed: false };
  return tableLosses(comparison, segment, renames).map((loss) => ({ ...loss, allowedBecause: allowanceFor(loss.kind, loss.table, segment, renames) }));
}

const statementsOf = (sql: string) => migration('0002_x', sql).statements;

describe('finding lost data', () => {
  it('reports values set to NULL as column data lost, but not values that left with their rows', () => {
    const segment = { statements: statementsOf('UPDATE t SET a = NULL WHERE id > 5; DELETE FROM t WHERE id < 3;') };
    expect(losses(fp('t', 10, { id: 10, a: 10, b: 10 }), fp('t', 8, { id: 8, a: 3, b: 8 }), segment).map(describeLoss)).toEqual([
      't: 10 rows before, 8 rows after (FV701)',
      't.a: 10 values before, 3 values after (FV703)',
    ]);
  });

  it('reports a vanished table, and accepts it only with an allow on the statement the segment is made of', () => {
    const [drop] = statementsOf('DROP TABLE old;');
    expect(losses(fp('old', 4, { id: 4 }), null, { statements: [drop!], allowing: drop! })[0]).toMatchObject({ code: 'FV702', allowedBecause: null });
    const [allowed] = statementsOf('-- flotilla:allow FD102 reason="archived elsewhere"\nDROP TABLE old;');
    expect(losses(fp('old', 4, { id: 4 }), null, { statements: [allowed!], allowing: allowed! })[0]).toMatchObject({ code: 'FV702', allowedBecause: 'archived elsewhere' });
    // The same allow, when the loss was measured across more than its own statement, accepts nothing.
    expect(losses(fp('old', 4, { id: 4 }), null, { statements: [allowed!, ...statementsOf('DROP TABLE old;')] })[0]!.allowedBecause).toBeNull();
  });

  it('does not accept an allow on a statement about another table, or one without a reason', () => {
    const [onB] = statementsOf('-- flotilla:allow FV701 reason="b only"\nDELETE FROM b WHERE true;');
    expect(losses(fp('a', 4, {}), fp('a', 0, {}), { statements: [onB!], allowing: onB! })[0]!.allowedBecause).toBeNull();
    const [noReason] = statementsOf('-- flotilla:allow FV701\nDELETE FROM a WHERE true;');
    expect(losses(fp('a', 4, {}), fp('a', 0, {}), { statements: [noReason!], allowing: noReason! })[0]!.allowedBecause).toBeNull();
  });

  it('follows renames of tables and columns', () => {
    const p = planOf(migration('0002_x', 'ALTER TABLE t RENAME COLUMN a TO b; ALTER TABLE t RENAME TO u; ALTER TABLE u RENAME COLUMN b TO c;'));
    expect(planRenames(p)).toEqual({ tables: new Map([['t', 'u']]), columns: new Map([['t.a', 'c']]) });
    expect(losses(fp('t', 3, { a: 3 }), fp('t', 3, { c: 3 }), { statements: planStatements(p) })).toEqual([]);
  });

  it('knows which relations a plan can affect, and when it cannot know', () => {
    expect(affectedRelations(planOf(migration('0002_x', 'UPDATE a SET x = 1 WHERE id = 2; ALTER TABLE b ALTER COLUMN z TYPE int;')))).toEqual({
      all: false,
      names: new Set(['a', 'b']),
    });
    // Adding a table, a column, an index, a constraint or rows cannot lose data: nothing to compare.
    const additive = `CREATE TABLE d (id int PRIMARY KEY, b_id int);
      ALTER TABLE b ADD COLUMN y int, ADD CONSTRAINT b_y CHECK (y > 0) NOT VALID, ALTER COLUMN y SET DEFAULT 1;
      ALTER TABLE d ADD CONSTRAINT d_b FOREIGN KEY (b_id) REFERENCES b (id) ON DELETE CASCADE;
      CREATE INDEX CONCURRENTLY b_y_idx ON b (y);
      INSERT INTO d (id) VALUES (1);
      COMMENT ON TABLE d IS 'new';`;
    expect(affectedRelations(planOf(migration('0002_x', additive)))).toEqual({ all: false, names: new Set() });
    // These can: an upsert overwrites, a dropped column or a detached partition takes values or rows away.
    expect(affectedRelations(planOf(migration('0002_x', 'INSERT INTO a (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET x = NULL;'))).names).toEqual(new Set(['a']));
    expect(affectedRelations(planOf(migration('0002_x', 'ALTER TABLE b ADD COLUMN y int, DROP COLUMN z;'))).names).toEqual(new Set(['b']));
    expect(affectedRelations(planOf(migration('0002_x', 'ALTER TABLE e DETACH PARTITION e_2020;'))).names).toEqual(new Set(['e']));
    // A table only read in a subquery is not one the statement changes.
    expect(affectedRelations(planOf(migration('0002_x', 'DELETE FROM a WHERE id IN (SELECT a_id FROM b);'))).names).toEqual(new Set(['a']));
    // A DELETE nested in an INSERT's CTE is seen.
    expect(affectedRelations(planOf(migration('0002_x', 'WITH gone AS (DELETE FROM a WHERE id > 2 RETURNING id) INSERT INTO log (id) SELECT id FROM gone;'))).names).toEqual(
      new Set(['a', 'log']),
    );
    expect(affectedRelations(planOf(migration('0002_x', 'DO $$ BEGIN DELETE FROM c; END $$;'))).all).toBe(true);
    expect(affectedRelations(planOf(migration('0002_x', 'UPDATE a SET x = cleanup(id) WHERE true;'))).all).toBe(true);
  });
});
