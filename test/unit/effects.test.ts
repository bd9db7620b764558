import { describe, expect, it } from 'vitest';
import { migration } from '../support/migrations.js';

/** The facts of the one statement in `sql`. */
function effectsOf(sql: string) {
  const [statement] = migration('0001_x', sql).statements;
  const { writes, removes, overwrites, unbounded, changesLaterEffects, keepsData } = statement!;
  return { writes: [...writes].sort(), removes, overwrites, unbounded, changesLaterEffects, keepsData };
}

describe('what a statement can change, read from its whole tree', () => {
  it('finds DML nested in CTEs and subqueries, of every kind of statement', () => {
    expect(effectsOf('WITH gone AS (DELETE FROM members WHERE id > 2 RETURNING *) INSERT INTO archive SELECT * FROM gone;')).toMatchObject({
      writes: ['archive', 'members'],
      removes: true,
      keepsData: false,
    });
    expect(effectsOf("WITH u AS (UPDATE members SET name = 'x' WHERE id = 1 RETURNING id) SELECT count(*) FROM u;")).toMatchObject({
      writes: ['members'],
      overwrites: true,
      keepsData: false,
    });
    expect(effectsOf('CREATE TABLE copy AS WITH d AS (DELETE FROM loans RETURNING *) SELECT * FROM d;')).toMatchObject({ writes: ['loans'], removes: true });
    expect(effectsOf('EXPLAIN ANALYZE DELETE FROM loans WHERE amount > 10;')).toMatchObject({ writes: ['loans'], removes: true });
    expect(effectsOf('INSERT INTO a (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 2;')).toMatchObject({ writes: ['a'], overwrites: true, keepsData: false });
    expect(effectsOf('INSERT INTO a (id) VALUES (1) ON CONFLICT DO NOTHING;')).toMatchObject({ writes: ['a'], overwrites: false, removes: false, keepsData: true });
    expect(effectsOf('MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE;')).toMatchObject({ writes: ['a'], removes: true, overwrites: true });
  });

  it('names only the tables a statement changes, not the ones it reads', () => {
    expect(effectsOf('DELETE FROM a WHERE id IN (SELECT a_id FROM b JOIN c ON c.id = b.c_id);').writes).toEqual(['a']);
    expect(effectsOf('UPDATE a SET x = b.x FROM b WHERE a.id = b.id;').writes).toEqual(['a']);
  });

  it('takes what it cannot read as unbounded: calls, procedural code, cascades, drops of what others use', () => {
    const unbounded = {
      'DO $$ BEGIN EXECUTE format($q$DELETE FROM %I.t$q$, current_schema()); END $$;': 'DO block',
      'CALL cleanup();': 'CALL',
      'SELECT lo_unlink(42);': 'a call of lo_unlink()',
      "SELECT set_config('search_path', 'other', true);": 'a call of set_config()',
      'INSERT INTO log SELECT purge(id) FROM members;': 'a call of purge()',
      'DROP DOMAIN positive CASCADE;': 'CASCADE',
      'DROP TYPE mood;': 'DROP TYPE',
      'DROP EXTENSION citext;': 'DROP EXTENSION',
      'DROP FUNCTION f();': 'DROP FUNCTION',
      'DROP SCHEMA s;': 'DROP SCHEMA',
      'DROP OWNED BY someone;': 'DROP OWNED',
      'TRUNCATE a CASCADE;': 'TRUNCATE … CASCADE',
      'ALTER TABLE a DROP COLUMN x CASCADE;': 'CASCADE',
      "ALTER TYPE mood RENAME VALUE 'sad' TO 'happy';": 'ALTER TYPE … RENAME VALUE',
      'EXECUTE purge_all;': 'EXECUTE of a prepared statement',
      "COPY a TO PROGRAM 'rm -rf /tmp/x';": 'COPY with a file or program',
      'ALTER TABLE a ADD COLUMN y int DEFAULT compute();': 'a call of compute()',
    };
    for (const [sql, reason] of Object.entries(unbounded)) expect(effectsOf(sql), sql).toMatchObject({ unbounded: reason, keepsData: false });
    // A statement kind Flotilla has no reading of is assumed to reach anything.
    expect(effectsOf('ALTER DATABASE x SET work_mem = 1;').unbounded).toMatch(/cannot read the effect/);
  });

  it('keeps ordinary calls, additive DDL and plain drops bounded', () => {
    for (const sql of [
      'UPDATE a SET name = lower(trim(name)), updated_at = now() WHERE name <> lower(trim(name));',
      'ALTER TABLE a ADD COLUMN id2 uuid DEFAULT gen_random_uuid();',
      'CREATE INDEX CONCURRENTLY a_x ON a (lower(x));',
      'DROP TABLE a;',
      'DROP VIEW v;',
      'DROP INDEX a_x;',
      "SELECT setval('a_id_seq', 10);",
    ]) {
      expect(effectsOf(sql).unbounded, sql).toBeUndefined();
    }
    expect(effectsOf('DROP TABLE a, b;')).toMatchObject({ writes: ['a', 'b'], removes: true });
    expect(effectsOf('ALTER TABLE a ALTER COLUMN x TYPE int;')).toMatchObject({ writes: ['a'], overwrites: true });
    expect(effectsOf('ALTER TABLE a SET SCHEMA elsewhere;')).toMatchObject({ writes: ['a'], removes: true });
  });

  it('knows what changes later statements: triggers, rules, functions', () => {
    for (const sql of [
      'CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM b; RETURN NEW; END $$;',
      'CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();',
      'CREATE RULE r AS ON INSERT TO a DO ALSO DELETE FROM b;',
      'ALTER TABLE a ENABLE TRIGGER t;',
      'DROP TRIGGER t ON a;',
    ]) {
      expect(effectsOf(sql).changesLaterEffects, sql).toBe(true);
    }
  });
});
