import type { HostileCase } from '../support/hostile.js';
import { hostileSuite } from '../support/hostile.js';

/** Classes 3 and 4: effects through triggers, rules and foreign keys the tenant already has; data outside ordinary tables. */
const cases: HostileCase[] = [
  {
    name: "an UPDATE fires an earlier migration's trigger, which deletes another table's rows",
    class: 3,
    files: () => ({ '0002_x.sql': "UPDATE members SET status = 'busy' WHERE id = 1;" }),
    expect: 'rollback',
  },
  {
    name: "a plain INSERT fires an earlier migration's rule, which deletes rows elsewhere",
    class: 3,
    files: () => ({ '0002_x.sql': "INSERT INTO audit_log (what) VALUES ('upgrade 2');" }),
    expect: 'rollback',
  },
  { name: 'a DELETE whose foreign key cascades to loans', class: 3, files: () => ({ '0002_x.sql': 'DELETE FROM members WHERE id = 10;' }), expect: 'rollback' },
  {
    name: 'the same DELETE allowed: the member and the loans its key cascades to, backed up first',
    class: 3,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV701 reason="member 10 closed the account"\nDELETE FROM members WHERE id = 10;' }),
    expect: 'backup',
  },
  {
    name: 'an allow on the UPDATE does not cover the rows the trigger deletes in another table',
    class: 3,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV701 reason="status only"\nUPDATE members SET status = \'busy\' WHERE id = 2;' }),
    expect: 'rollback',
  },
  { name: 'a call of a function an earlier migration made, which deletes members', class: 3, files: () => ({ '0002_x.sql': 'SELECT cleanup_members();' }), expect: 'rollback' },
  {
    name: 'a trigger made in this run, then an INSERT that fires it',
    class: 3,
    files: () => ({
      '0002_trigger.sql':
        'CREATE FUNCTION purge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM loans WHERE member_id = NEW.member_id; RETURN NEW; END $$;\nCREATE TRIGGER notes_purge AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION purge();',
      '0003_note.sql': "INSERT INTO notes VALUES (3, 'moved');",
    }),
    expect: 'rollback',
  },
  {
    name: 'a rule made in this run turns an UPDATE into a DELETE',
    class: 3,
    files: () => ({
      '0002_x.sql': 'CREATE RULE no_update AS ON UPDATE TO audit_log DO INSTEAD DELETE FROM audit_log WHERE id = OLD.id;',
      '0003_y.sql': 'UPDATE audit_log SET what = upper(what) WHERE id = 1;',
    }),
    expect: 'rollback',
  },
  { name: 'a no-op UPDATE that fires nothing: applied unchanged', class: 3, files: () => ({ '0002_x.sql': 'UPDATE members SET name = name WHERE id = 3;' }), expect: 'clean' },
  {
    name: 'ON DELETE SET NULL empties values in another table',
    class: 3,
    files: () => ({
      '0002_fk.sql': 'ALTER TABLE notes ADD COLUMN loan_id int REFERENCES loans (id) ON DELETE SET NULL;\nUPDATE notes SET loan_id = member_id WHERE member_id IS NOT NULL;',
      '0003_del.sql': 'DELETE FROM loans WHERE id = 1;',
    }),
    expect: 'rollback',
  },
  { name: 'lo_unlink of a large object', class: 4, files: () => ({ '0002_x.sql': 'SELECT lo_unlink(content) FROM attachments WHERE id = 1;' }), expect: 'lint' },
  {
    name: 'lo_unlink from a DO block: the large object is missed',
    class: 4,
    files: () => ({ '0002_x.sql': 'DO $$ BEGIN PERFORM lo_unlink(content) FROM attachments WHERE id = 2; END $$;' }),
    expect: 'rollback',
  },
  {
    name: 'lo_put overwrites a large object',
    class: 4,
    files: () => ({ '0002_x.sql': "SELECT lo_put(content, 0, '\\x00'::bytea) FROM attachments WHERE id = 1;" }),
    expect: 'lint',
  },
  {
    name: 'lo_put from a DO block: the changed contents are seen',
    class: 4,
    files: () => ({ '0002_x.sql': "DO $$ BEGIN PERFORM lo_put(content, 0, '\\x00'::bytea) FROM attachments WHERE id = 3; END $$;" }),
    expect: 'rollback',
  },
  {
    name: 'lo_unlink allowed: applied with the backup taken first',
    class: 4,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FD111 reason="file 1 was a duplicate"\nSELECT lo_unlink(content) FROM attachments WHERE id = 1;' }),
    // A schema tenant's role does not own large objects made outside it: PostgreSQL refuses.
    expect: { database: 'backup', schema: 'rollback' },
  },
  {
    name: 'a table moved out of the tenant with SET SCHEMA',
    class: 4,
    files: () => ({ '0002_x.sql': 'CREATE SCHEMA IF NOT EXISTS attic;\nALTER TABLE notes SET SCHEMA attic;' }),
    expect: 'rollback',
  },
  { name: 'a partition named directly, its rows deleted', class: 3, files: () => ({ '0002_x.sql': 'DELETE FROM events_2023 WHERE id > 0;' }), expect: 'rollback' },
  {
    name: 'a table renamed, then its rows deleted under the new name',
    class: 3,
    files: () => ({ '0002_x.sql': 'ALTER TABLE notes RENAME TO notes_old;\nDELETE FROM notes_old WHERE member_id = 1;' }),
    expect: 'rollback',
  },
  {
    name: "a SELECT from an earlier migration's view, whose query calls a function that deletes",
    class: 3,
    files: () => ({ '0002_x.sql': 'SELECT * FROM member_cleanup;' }),
    expect: 'rollback',
  },
  { name: 'REFRESH MATERIALIZED VIEW of one whose query deletes', class: 3, files: () => ({ '0002_x.sql': 'REFRESH MATERIALIZED VIEW member_cleanup_mv;' }), expect: 'rollback' },
  {
    name: 'a view made in this run that calls the deleting function, then read',
    class: 3,
    files: () => ({ '0002_v.sql': 'CREATE VIEW purge AS SELECT cleanup_members()::text AS done;', '0003_r.sql': 'SELECT count(*) FROM purge;' }),
    expect: 'rollback',
  },
  {
    name: "a trigger on Flotilla's history table, which would run as Flotilla after verification",
    class: 3,
    files: () => ({
      '0002_x.sql':
        'CREATE FUNCTION on_history() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM notes WHERE member_id = 4; RETURN NEW; END $$;\nCREATE TRIGGER on_history AFTER INSERT ON flotilla_migrations FOR EACH ROW EXECUTE FUNCTION on_history();',
    }),
    expect: 'rollback',
  },
];

hostileSuite('hostile migrations: existing objects and data outside tables', 'he', cases);
