import { describe, expect, it } from 'vitest';
import type { ParsedMigration } from '../../src/core/migration.js';
import { plan } from '../../src/core/plan.js';
import type { TableFingerprint } from '../../src/core/verification.js';
import { affectedRelations, describeLoss, findLosses, planRenames } from '../../src/core/verification.js';
import { migration } from '../support/migrations.js';

function planOf(...migrations: ParsedMigration[]) {
  const result = plan(migrations, []);
  if (!result.ok) throw new Error('plan failed');
  return result.plan;
}

const fp = (table: string, rows: number, columns: Record<string, number>): TableFingerprint => ({ schema: 'public', table, rows, columns });

describe('finding lost data', () => {
  it('reports values set to NULL as column data lost, but not values that left with their rows', () => {
    const p = planOf(migration('0002_x', "UPDATE t SET a = NULL WHERE id > 5; DELETE FROM t WHERE id < 3;"));
    const losses = findLosses([fp('t', 10, { id: 10, a: 10, b: 10 })], new Map([['public.t', fp('t', 8, { id: 8, a: 3, b: 8 })]]), p);
    expect(losses.map(describeLoss)).toEqual(['t: 10 rows before, 8 rows after (FV701)', 't.a: 10 values before, 3 values after (FV703)']);
  });

  it('reports a vanished table, and accepts it only with an allow on a statement touching it', () => {
    const before = [fp('old', 4, { id: 4 })];
    const gone = new Map([['public.old', null]]);
    expect(findLosses(before, gone, planOf(migration('0002_x', 'DROP TABLE old;')))[0]).toMatchObject({ code: 'FV702', allowedBecause: null });
    const allowed = findLosses(before, gone, planOf(migration('0002_x', '-- flotilla:allow FD102 reason="archived elsewhere"\nDROP TABLE old;')));
    expect(allowed[0]).toMatchObject({ code: 'FV702', allowedBecause: 'archived elsewhere' });
  });

  it('does not accept an allow on a statement about another table, or one without a reason', () => {
    const before = [fp('a', 4, {})];
    const after = new Map([['public.a', fp('a', 0, {})]]);
    expect(findLosses(before, after, planOf(migration('0002_x', '-- flotilla:allow FV701 reason="b only"\nDELETE FROM b WHERE true;\nDELETE FROM a WHERE true;')))[0]!.allowedBecause).toBeNull();
    expect(findLosses(before, after, planOf(migration('0002_x', '-- flotilla:allow FV701\nDELETE FROM a WHERE true;')))[0]!.allowedBecause).toBeNull();
  });

  it('follows renames of tables and columns', () => {
    const p = planOf(migration('0002_x', 'ALTER TABLE t RENAME COLUMN a TO b; ALTER TABLE t RENAME TO u; ALTER TABLE u RENAME COLUMN b TO c;'));
    expect(planRenames(p)).toEqual({ tables: new Map([['t', 'u']]), columns: new Map([['t.a', 'c']]) });
    expect(findLosses([fp('t', 3, { a: 3 })], new Map([['public.t', fp('t', 3, { c: 3 })]]), p)).toEqual([]);
  });

  it('knows which relations a plan can affect, and when it cannot know', () => {
    expect(affectedRelations(planOf(migration('0002_x', 'UPDATE a SET x = 1 WHERE id = 2; ALTER TABLE b ALTER COLUMN z TYPE int;')))).toEqual({ all: false, names: new Set(['a', 'b']) });
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
    expect(affectedRelations(planOf(migration('0002_x', 'WITH gone AS (DELETE FROM a WHERE id > 2 RETURNING id) INSERT INTO log (id) SELECT id FROM gone;'))).names).toEqual(new Set(['a', 'log']));
    expect(affectedRelations(planOf(migration('0002_x', 'DO $$ BEGIN DELETE FROM c; END $$;'))).all).toBe(true);
    expect(affectedRelations(planOf(migration('0002_x', 'UPDATE a SET x = cleanup(id) WHERE true;'))).all).toBe(true);
  });
});
