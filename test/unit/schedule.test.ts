import { describe, expect, it } from 'vitest';
import type { ParsedMigration } from '../../src/core/migration.js';
import { plan } from '../../src/core/plan.js';
import type { Phase } from '../../src/core/schedule.js';
import { schedule } from '../../src/core/schedule.js';
import { migration } from '../support/migrations.js';

function scheduleAll(...migrations: ParsedMigration[]) {
  const result = plan(migrations, []);
  if (!result.ok) throw new Error('plan failed');
  return schedule(result.plan);
}

function shape(phases: readonly Phase[]): string[] {
  return phases.map((p) =>
    p.kind === 'transaction'
      ? `T:${p.statements.map((s) => `${s.migration.version}.${s.statement.index}`).join(',')}`
      : `O:${p.statement.migration.version}.${p.statement.statement.index}`,
  );
}

describe('schedule', () => {
  it('puts every transactional statement of every pending migration in one transaction', () => {
    const s = scheduleAll(migration('0001_a', 'CREATE TABLE a (id int); CREATE TABLE b (id int);'), migration('0002_b', 'ALTER TABLE a ADD COLUMN x int;'));
    expect(shape(s.phases)).toEqual(['T:0001.0,0001.1,0002.0']);
    expect(s.splits).toEqual([]);
    // Both history rows are written inside that transaction.
    expect(s.phases[0]!.history.map((h) => [h.migration.id, h.remaining])).toEqual([
      ['0001_a', []],
      ['0002_b', []],
    ]);
  });

  it('defers a statement that cannot run in a transaction until after the commit, recorded as remaining', () => {
    const s = scheduleAll(
      migration('0001_a', 'CREATE TABLE a (id int, c int);'),
      migration('0002_b', 'CREATE INDEX CONCURRENTLY a_c ON a (c);'),
      migration('0003_c', 'ALTER TABLE a ADD COLUMN d int; CREATE TABLE z (id int);'),
    );
    expect(shape(s.phases)).toEqual(['T:0001.0,0003.0,0003.1', 'O:0002.0']);
    expect(s.phases[0]!.history.map((h) => [h.migration.id, h.remaining])).toEqual([
      ['0001_a', []],
      ['0003_c', []],
      ['0002_b', [0]],
    ]);
    expect(s.phases[1]!.history.map((h) => [h.migration.id, h.remaining])).toEqual([['0002_b', []]]);
  });

  it('commits before a statement that depends on a deferred one, and says why', () => {
    const s = scheduleAll(
      migration('0001_a', 'CREATE TABLE a (id int, c int);'),
      migration('0002_b', 'CREATE INDEX CONCURRENTLY a_c ON a (c);'),
      migration('0003_c', 'ALTER TABLE a DROP COLUMN c;'),
    );
    expect(shape(s.phases)).toEqual(['T:0001.0', 'O:0002.0', 'T:0003.0']);
    expect(s.splits).toHaveLength(1);
    expect(s.splits[0]!.before).toBe('0003_c.sql:1');
    expect(s.splits[0]!.reason).toContain('both touch "a"');
  });

  it('commits before a statement that names a deferred index', () => {
    const s = scheduleAll(migration('0001_a', 'CREATE TABLE a (c int); CREATE INDEX CONCURRENTLY a_c ON a (c); DROP INDEX a_c;'));
    expect(shape(s.phases)).toEqual(['T:0001.0', 'O:0001.1', 'T:0001.2']);
  });

  it('commits before a statement uses an enum value added in the same transaction', () => {
    const s = scheduleAll(
      migration('0001_a', "CREATE TYPE st AS ENUM ('a'); CREATE TABLE t (s st);"),
      migration('0002_b', "ALTER TYPE st ADD VALUE 'b';"),
      migration('0003_c', "UPDATE t SET s = 'b' WHERE s = 'a';"),
    );
    expect(shape(s.phases)).toEqual(['T:0001.0,0001.1,0002.0', 'T:0003.0']);
    expect(s.splits[0]!.reason).toContain("enum value 'b'");
  });

  it('records a migration with no statements in the first transaction', () => {
    const s = scheduleAll(migration('0001_a', '-- empty'), migration('0002_b', 'CREATE TABLE a (id int);'));
    expect(shape(s.phases)).toEqual(['T:0002.0']);
    expect(s.phases[0]!.history.map((h) => h.migration.id).sort()).toEqual(['0001_a', '0002_b']);
  });
});
