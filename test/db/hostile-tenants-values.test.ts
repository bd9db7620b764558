import type { HostileCase } from '../support/hostile.js';
import { hostileSuite } from '../support/hostile.js';

/** Classes 7 and 8: one schema tenant's migration reaching another's; replacement and overwrites that counts cannot see. And legitimate migrations. */
const cases: HostileCase[] = [
  {
    name: "dynamic SQL in a DO block deletes another schema tenant's rows",
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `DO $$ BEGIN EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); END $$;` }),
    expect: 'rollback',
  },
  {
    name: 'set_config of search_path at run time, then a DELETE',
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `SELECT set_config('search_path', '${neighbour}', true);\nDELETE FROM audit_log WHERE id = 1;` }),
    expect: 'rollback',
  },
  {
    name: "a loop over every schema truncating each tenant's notes",
    class: 7,
    files: () => ({
      '0002_x.sql':
        "DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema' LOOP BEGIN EXECUTE format('TRUNCATE %I.notes', s); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;",
    }),
    expect: 'rollback',
  },
  {
    name: "dropping another tenant's schema from dynamic SQL",
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `DO $$ BEGIN EXECUTE 'DROP SCHEMA ${neighbour} CASCADE'; END $$;` }),
    expect: 'rollback',
  },
  {
    name: 'RESET ROLE, then a DELETE elsewhere',
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `RESET ROLE;\nDELETE FROM "${neighbour}".notes WHERE member_id = 1;` }),
    expect: 'lint',
  },
  {
    name: 'a role change hidden in a DO block',
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `DO $$ BEGIN EXECUTE 'reset   role'; EXECUTE 'DELETE FROM "${neighbour}".notes'; END $$;` }),
    expect: 'lint',
  },
  {
    name: 'a role change built from pieces at run time: PostgreSQL refuses it inside the function the statement runs in',
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `DO $$ BEGIN EXECUTE 'SET ' || 'RO' || 'LE ' || 'postgres'; EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); END $$;` }),
    expect: 'rollback',
  },
  {
    name: "set_config('ro' || 'le') at run time",
    class: 7,
    files: ({ neighbour }) => ({
      '0002_x.sql': `SELECT set_config('ro' || 'le', 'postgres', true);\nDO $$ BEGIN EXECUTE format('DELETE FROM %I.audit_log', '${neighbour}'); END $$;`,
    }),
    expect: 'rollback',
  },
  {
    name: "a function named like a built-in one Flotilla's verification calls, reaching another tenant",
    class: 7,
    files: ({ neighbour }) => ({
      '0002_x.sql': `CREATE FUNCTION hashtextextended(text, integer) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); EXCEPTION WHEN others THEN NULL; END; RETURN 0; END $f$;\nUPDATE members SET score = score WHERE id = 1;`,
    }),
    expect: 'clean',
  },
  {
    name: 'a type change whose USING calls a function reaching another tenant',
    class: 7,
    files: ({ neighbour }) => ({
      '0002_f.sql': `CREATE FUNCTION reach(n numeric) RETURNS numeric LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE format('DELETE FROM %I.audit_log', '${neighbour}'); EXCEPTION WHEN others THEN NULL; END; RETURN n; END $f$;`,
      '0003_t.sql': 'ALTER TABLE members ALTER COLUMN score TYPE numeric(8,2) USING reach(score);',
    }),
    expect: 'clean',
  },
  {
    name: "a cast of the tenant's own type, which Flotilla's hashing would run as its user",
    class: 7,
    files: ({ neighbour }) => ({
      '0002_x.sql': `CREATE FUNCTION mood_text(x mood) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); DELETE FROM audit_log WHERE id = 2; EXCEPTION WHEN others THEN NULL; END; RETURN x::name::text; END $f$;\nCREATE CAST (mood AS text) WITH FUNCTION mood_text(mood);\nUPDATE members SET score = score WHERE id = 2;`,
    }),
    expect: 'clean',
  },
  {
    name: 'a domain whose check reaches another tenant, as the new type of a column',
    class: 7,
    files: ({ neighbour }) => ({
      '0002_x.sql': `CREATE FUNCTION chk(x int) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); EXCEPTION WHEN others THEN NULL; END; RETURN true; END $f$;\nCREATE DOMAIN checked_int AS int CHECK (chk(VALUE));\nALTER TABLE audit_log ALTER COLUMN id TYPE checked_int;`,
    }),
    expect: 'clean',
  },
  {
    name: "Flotilla's history table replaced by a view whose query reaches another tenant",
    class: 7,
    files: ({ neighbour }) => ({
      '0002_x.sql': `CREATE FUNCTION evil() RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE format('DELETE FROM %I.notes', '${neighbour}'); EXCEPTION WHEN others THEN NULL; END; RETURN true; END $f$;\nCREATE TABLE hist AS SELECT * FROM flotilla_migrations;\nDO $d$ BEGIN EXECUTE 'DROP TABLE flotilla_migrations'; END $d$;\nCREATE VIEW flotilla_migrations AS SELECT * FROM hist WHERE evil();`,
    }),
    expect: 'rollback',
  },
  {
    name: 'CREATE SCHEMA with a GRANT element on a system table',
    class: 7,
    files: () => ({ '0002_x.sql': 'CREATE SCHEMA extra GRANT SELECT ON TABLE pg_catalog.pg_largeobject TO PUBLIC;' }),
    expect: { database: 'clean', schema: 'rollback' },
  },
  {
    name: "a qualified reference to another tenant's schema",
    class: 7,
    files: ({ neighbour }) => ({ '0002_x.sql': `DELETE FROM "${neighbour}".notes WHERE member_id = 2;` }),
    expect: 'lint',
  },
  {
    name: 'rows of a table without a key deleted and replaced by as many others',
    class: 8,
    files: () => ({ '0002_x.sql': "DELETE FROM notes WHERE member_id IN (5, 6);\nINSERT INTO notes VALUES (5, 'other'), (6, 'other');" }),
    expect: 'rollback',
  },
  {
    name: 'an UPDATE … WHERE that rewrites every name: applied, reported as overwritten, backed up first',
    class: 8,
    files: () => ({ '0002_x.sql': "UPDATE members SET name = 'anonymous' WHERE id > 0;" }),
    expect: 'backup',
  },
  {
    name: 'the same with verify.values "refuse": rolled back, FV705',
    class: 8,
    files: () => ({ '0002_x.sql': "UPDATE members SET name = 'anonymous' WHERE id > 0;" }),
    values: 'refuse',
    expect: 'rollback',
  },
  {
    name: 'the same with verify.values "refuse" and an allow FV705',
    class: 8,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV705 reason="names are anonymised"\nUPDATE members SET name = \'anonymous\' WHERE id > 0;' }),
    values: 'refuse',
    expect: 'backup',
  },
  {
    name: 'INSERT … ON CONFLICT DO UPDATE overwrites existing rows: reported, backed up first',
    class: 8,
    files: () => ({ '0002_x.sql': "INSERT INTO members (id, name) VALUES (1, 'replaced'), (2, 'replaced') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name;" }),
    expect: 'backup',
  },
  { name: 'a type change that rounds (numeric to integer)', class: 8, files: () => ({ '0002_x.sql': 'ALTER TABLE members ALTER COLUMN score TYPE integer;' }), expect: 'rollback' },
  {
    name: 'a type change that truncates (text to varchar(3))',
    class: 8,
    files: () => ({ '0002_x.sql': 'ALTER TABLE members ALTER COLUMN name TYPE varchar(3) USING name::varchar(3);' }),
    expect: 'rollback',
  },
  { name: 'a type change USING 0', class: 8, files: () => ({ '0002_x.sql': 'ALTER TABLE members ALTER COLUMN score TYPE numeric(6,2) USING 0;' }), expect: 'rollback' },
  {
    name: 'a rounding type change allowed: applied, backed up first',
    class: 8,
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV704 reason="scores are whole points now"\nALTER TABLE members ALTER COLUMN score TYPE integer;' }),
    expect: 'backup',
  },
  { name: 'a widening type change keeps every value', class: 'legit', files: () => ({ '0002_x.sql': 'ALTER TABLE loans ALTER COLUMN id TYPE bigint;' }), expect: 'clean' },
  {
    name: "a back-fill of a new column (scenario S1's)",
    class: 'legit',
    files: () => ({ '0002_x.sql': 'ALTER TABLE members ADD COLUMN display_name text;\nUPDATE members SET display_name = initcap(name) WHERE display_name IS NULL;' }),
    expect: 'clean',
  },
  {
    name: 'an allowed transform of values',
    class: 'legit',
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV705 reason="emails are stored lowercase"\nUPDATE members SET email = lower(email) WHERE email <> lower(email);' }),
    values: 'refuse',
    expect: 'clean',
  },
  {
    name: 'an allowed cleanup of audit rows',
    class: 'legit',
    files: () => ({ '0002_x.sql': '-- flotilla:allow FV701 reason="seed rows are not audit"\nDELETE FROM audit_log WHERE what = \'seeded\';' }),
    expect: 'backup',
  },
  { name: 'SELECT … INTO a new table', class: 'legit', files: () => ({ '0002_x.sql': 'SELECT * INTO members_archive FROM members WHERE id < 3;' }), expect: 'clean' },
  {
    name: 'additive changes: a table, a column with a default, an index, a constraint NOT VALID',
    class: 'legit',
    files: () => ({
      '0002_x.sql':
        "CREATE TABLE tags (id int PRIMARY KEY, member_id int REFERENCES members (id), label text);\nALTER TABLE members ADD COLUMN joined date DEFAULT '2020-01-01';\nCREATE INDEX loans_member ON loans (member_id);\nALTER TABLE loans ADD CONSTRAINT loans_small CHECK (amount < 100000) NOT VALID;",
    }),
    expect: 'clean',
  },
];

hostileSuite('hostile migrations: other tenants, replaced rows and overwritten values; legitimate ones', 'hv', cases);
