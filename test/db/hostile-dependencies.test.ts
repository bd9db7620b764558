import type { HostileCase } from '../support/hostile.js';
import { hostileSuite } from '../support/hostile.js';

/** Classes 1 and 2: cascades through objects that are not tables; DML nested where a plain statement stands. */
const cases: HostileCase[] = [
  { name: 'DROP DOMAIN … CASCADE drops the column that uses it', class: 1, files: () => ({ '0002_x.sql': 'DROP DOMAIN positive_amount CASCADE;' }), expect: 'lint' },
  {
    name: 'DROP DOMAIN … CASCADE allowed: applied, the lost column reported, backed up first',
    class: 1,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FD108,FD110,FV703 reason="amounts move to a ledger"\nDROP DOMAIN positive_amount CASCADE;' }),
    expect: 'backup',
  },
  { name: 'DROP TYPE … CASCADE drops a column of every row', class: 1, files: () => ({ '0002_x.sql': 'DROP TYPE mood CASCADE;' }), expect: 'lint' },
  { name: 'DROP FUNCTION … CASCADE drops the trigger that uses it', class: 1, files: () => ({ '0002_x.sql': 'DROP FUNCTION forget_notes() CASCADE;' }), expect: 'lint' },
  { name: 'DROP OWNED BY the current user', class: 1, files: () => ({ '0002_x.sql': 'DROP OWNED BY CURRENT_USER;' }), expect: 'lint' },
  { name: 'TRUNCATE … CASCADE empties the tables that point at it', class: 1, files: () => ({ '0002_x.sql': 'TRUNCATE members CASCADE;' }), expect: 'lint' },
  { name: 'DROP COLUMN … CASCADE', class: 1, files: () => ({ '0002_x.sql': 'ALTER TABLE members DROP COLUMN score CASCADE;' }), expect: 'lint' },
  {
    name: 'a cascade from a DO block, which lint cannot read: verification finds the column gone',
    class: 1,
    files: () => ({ '0002_x.sql': "DO $$ BEGIN EXECUTE 'DROP DOMAIN positive_amount CASCADE'; END $$;" }),
    expect: 'rollback',
  },
  {
    name: 'a type dropped with CASCADE through dynamic SQL: the status column gone',
    class: 1,
    files: () => ({ '0002_x.sql': "DO $$ BEGIN EXECUTE format('DROP TYPE %s CASCADE', 'mood'); END $$;" }),
    expect: 'rollback',
  },
  { name: 'a domain in use dropped without CASCADE: lint names its users', class: 1, files: () => ({ '0002_x.sql': 'DROP DOMAIN positive_amount;' }), expect: 'lint' },
  {
    name: 'a DELETE in a CTE of an INSERT',
    class: 2,
    files: () => ({ '0002_x.sql': "WITH gone AS (DELETE FROM loans WHERE amount > 100 RETURNING id) INSERT INTO audit_log (what) SELECT 'archived ' || id FROM gone;" }),
    expect: 'rollback',
  },
  {
    name: 'a DELETE without WHERE in a CTE',
    class: 2,
    files: () => ({ '0002_x.sql': 'WITH gone AS (DELETE FROM notes RETURNING 1) SELECT count(*) FROM gone;' }),
    expect: 'lint',
  },
  {
    name: 'an UPDATE in a CTE of a SELECT sets values to NULL',
    class: 2,
    files: () => ({ '0002_x.sql': 'WITH u AS (UPDATE members SET email = NULL WHERE id < 5 RETURNING id) SELECT count(*) FROM u;' }),
    expect: 'rollback',
  },
  {
    name: 'CREATE TABLE AS with a DELETE in its CTE (and the cascade to loans)',
    class: 2,
    files: () => ({ '0002_x.sql': 'CREATE TABLE former_members AS WITH d AS (DELETE FROM members WHERE id > 8 RETURNING *) SELECT * FROM d;' }),
    expect: 'rollback',
  },
  {
    name: 'an UPDATE in a CTE of an INSERT overwrites amounts: applied, reported, backed up first',
    class: 2,
    files: () => ({ '0002_x.sql': "WITH u AS (UPDATE loans SET amount = 1 WHERE id < 3 RETURNING id) INSERT INTO members (id, name) SELECT 100 + id, 'x' FROM u;" }),
    expect: 'backup',
  },
  { name: 'EXPLAIN ANALYZE runs the DELETE it explains', class: 2, files: () => ({ '0002_x.sql': 'EXPLAIN ANALYZE DELETE FROM notes WHERE member_id = 2;' }), expect: 'rollback' },
  {
    name: 'MERGE … WHEN MATCHED THEN DELETE',
    class: 2,
    files: () => ({ '0002_x.sql': 'MERGE INTO members m USING (SELECT 10 AS id) s ON m.id = s.id WHEN MATCHED THEN DELETE;' }),
    expect: 'rollback',
  },
  {
    name: 'an INSERT … SELECT whose subquery calls a function that deletes',
    class: 2,
    files: () => ({ '0002_x.sql': "INSERT INTO audit_log (what) SELECT 'cleaned ' || cleanup_members()::text;" }),
    expect: 'rollback',
  },
];

hostileSuite('hostile migrations: cascades and nested DML', 'hd', cases);
