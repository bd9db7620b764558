import type { HostileCase } from '../support/hostile.js';
import { hostileSuite } from '../support/hostile.js';

/** Classes 5 and 6: statements outside the transaction; allows that reach too far. */
const cases: HostileCase[] = [
  {
    name: 'a DELETE outside the transaction: compared around, the loss stops the upgrade, the backup was taken first',
    class: 5,
    files: () => ({ '0002_x.sql': '-- flotilla:no-transaction\nDELETE FROM notes WHERE member_id = 2;' }),
    expect: 'backup',
  },
  {
    name: 'the directive inside a string literal is no directive: all runs in one transaction, rolled back when the third statement fails',
    class: 5,
    files: () => ({ '0002_x.sql': "SELECT '\n-- flotilla:no-transaction\n';\nDELETE FROM loans WHERE id = 1;\nSELECT 1/0;" }),
    expect: 'rollback',
  },
  {
    name: 'the directive inside a dollar-quoted body is no directive',
    class: 5,
    files: () => ({ '0002_x.sql': 'DO $$ BEGIN\n-- flotilla:no-transaction\nNULL; END $$;\nDELETE FROM notes WHERE member_id = 4;\nSELECT 1/0;' }),
    expect: 'rollback',
  },
  {
    name: 'the directive inside a quoted identifier is no directive',
    class: 5,
    files: () => ({ '0002_x.sql': 'CREATE TABLE "\n-- flotilla:no-transaction\n" (id int);\nDELETE FROM notes WHERE member_id = 5;\nSELECT 1/0;' }),
    expect: 'rollback',
  },
  {
    name: 'values overwritten outside the transaction: applied, reported, backed up first',
    class: 5,
    files: () => ({ '0002_x.sql': '-- flotilla:no-transaction\nUPDATE members SET email = upper(email) WHERE id < 5;' }),
    expect: 'backup',
  },
  {
    name: 'outside the transaction, the first statement deletes and the third fails: stopped after the first, backed up first',
    class: 5,
    files: () => ({ '0002_x.sql': "-- flotilla:no-transaction\nDELETE FROM audit_log WHERE id = 1;\nINSERT INTO members (id, name) VALUES (50, 'x');\nSELECT 1/0;" }),
    expect: 'backup',
  },
  {
    name: 'an index built concurrently outside the transaction',
    class: 'legit',
    files: () => ({ '0002_x.sql': 'CREATE INDEX CONCURRENTLY members_email ON members (email);' }),
    expect: 'clean',
  },
  {
    name: 'an allow in an earlier migration of the same run does not cover a later statement deleting from the same table',
    class: 6,
    files: () => ({
      '0002_trim.sql': '-- flotilla:allow FV701 reason="old notes go"\nDELETE FROM notes WHERE body = \'n5\';',
      '0003_more.sql': 'DELETE FROM notes WHERE member_id = 6;',
    }),
    expect: 'rollback',
  },
  {
    name: 'the allowed migration alone goes through, backed up first',
    class: 6,
    files: () => ({ '0002_trim.sql': '-- flotilla:allow FV701 reason="old notes go"\nDELETE FROM notes WHERE body = \'n5\';' }),
    expect: 'backup',
  },
  {
    name: 'an allow on a statement that only reads the table in a subquery',
    class: 6,
    files: () => ({
      '0002_x.sql': '-- flotilla:allow FV701 reason="audit cleanup"\nDELETE FROM audit_log WHERE what IN (SELECT body FROM notes);\nDELETE FROM notes WHERE member_id = 7;',
    }),
    expect: 'rollback',
  },
  {
    name: "an allow does not cover a DO block's loss in a later migration of the run",
    class: 6,
    files: () => ({
      '0002_a.sql': '-- flotilla:allow FV701 reason="member 9 left"\nDELETE FROM notes WHERE member_id = 9;',
      '0003_b.sql': 'DO $$ BEGIN DELETE FROM notes WHERE member_id = 8; END $$;',
    }),
    expect: 'rollback',
  },
  {
    name: 'an allow of another kind of loss (a dropped column) does not cover rows',
    class: 6,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FD103 reason="x"\nDELETE FROM notes WHERE member_id = 3;' }),
    expect: 'rollback',
  },
  {
    name: 'an allowed DROP TABLE: applied, the lost table reported, backed up first',
    class: 6,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FD102 reason="the audit moved to the CRM"\nDROP TABLE audit_log;' }),
    expect: 'backup',
  },
  {
    name: 'an allowed DELETE of one table, and a trigger made in the same run deleting another',
    class: 6,
    files: () => ({
      '0002_t.sql':
        'CREATE FUNCTION also_loans() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM loans WHERE member_id = OLD.member_id; RETURN OLD; END $$;\nCREATE TRIGGER notes_also AFTER DELETE ON notes FOR EACH ROW EXECUTE FUNCTION also_loans();',
      '0003_d.sql': '-- flotilla:allow FV701 reason="notes of member 2 go"\nDELETE FROM notes WHERE member_id = 2;',
    }),
    expect: 'rollback',
  },
];

hostileSuite('hostile migrations: outside the transaction and allows', 'ht', cases);
