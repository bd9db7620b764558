import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../src/core/errors.js';
import { migration } from '../support/migrations.js';
import { parseOne } from '../../src/core/sql/parser.js';
import { rewriteForSchemaTenant } from '../../src/core/sql/schema-rewrite.js';

function thrown(fn: () => unknown): FlotillaError {
  try {
    fn();
  } catch (error) {
    if (error instanceof FlotillaError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('parsing migrations with the PostgreSQL parser', () => {
  it('splits statements by the parser, not by semicolons in strings, comments or bodies', () => {
    const m = migration(
      '0001_x',
      `-- a comment; with a semicolon
CREATE TABLE a (note text DEFAULT 'a;b');
/* block; comment */
DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;
INSERT INTO a VALUES ('x;y')`,
    );
    expect(m.statements.map((s) => [s.kind, s.line])).toEqual([
      ['CreateStmt', 2],
      ['DoStmt', 4],
      ['InsertStmt', 5],
    ]);
    expect(m.statements[0]!.sql).toBe(`CREATE TABLE a (note text DEFAULT 'a;b')`);
  });

  it('counts lines correctly after multi-byte characters', () => {
    const m = migration('0001_x', `SELECT 'éàü—✓';\n\nSELECT 2;`);
    expect(m.statements.map((s) => s.line)).toEqual([1, 3]);
  });

  it('names file, line and column of a syntax error', () => {
    const error = thrown(() => migration('0007_bad', `CREATE TABLE ok (id int);\n\nCREATE TABEL broken (id int);`));
    expect(error.code).toBe('FLO_SQL_SYNTAX');
    expect(error.message).toContain('0007_bad.sql:3:8');
    expect(error.message).toContain('syntax error at or near "TABEL"');
    expect(error.meta).toMatchObject({ file: '0007_bad.sql', line: 3, column: 8 });
  });

  it.each([
    ['CREATE INDEX CONCURRENTLY i ON t (c)', 'CREATE INDEX CONCURRENTLY'],
    ['DROP INDEX CONCURRENTLY i', 'DROP INDEX CONCURRENTLY'],
    ['REINDEX INDEX CONCURRENTLY i', 'REINDEX CONCURRENTLY'],
    ['VACUUM t', 'VACUUM'],
    ['ALTER SYSTEM SET work_mem = 1', 'ALTER SYSTEM'],
    ['CREATE DATABASE x', 'CREATE DATABASE'],
  ])('detects that %s cannot run in a transaction', (sql, reason) => {
    expect(migration('0001_x', sql).statements[0]!.nonTransactional).toBe(reason);
  });

  it.each(['CREATE INDEX i ON t (c)', 'ANALYZE t', "ALTER TYPE e ADD VALUE 'x'", 'DROP INDEX i'])('keeps %s in the transaction', (sql) => {
    expect(migration('0001_x', sql).statements[0]!.nonTransactional).toBeUndefined();
  });

  it('drops explicit BEGIN/COMMIT, which would otherwise commit half an upgrade', () => {
    const m = migration('0001_x', 'BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nSTART TRANSACTION;\nCREATE TABLE b (id int);\nEND;');
    expect(m.statements.map((s) => s.kind)).toEqual(['CreateStmt', 'CreateStmt']);
    expect(m.statements.map((s) => s.index)).toEqual([0, 1]);
    expect(m.removedTransactionControl).toEqual([1, 3, 4, 6]);
  });

  it.each(['ROLLBACK', 'SAVEPOINT s', 'RELEASE SAVEPOINT s', "PREPARE TRANSACTION 'x'"])('refuses %s with file and line', (sql) => {
    const error = thrown(() => migration('0003_tx', `CREATE TABLE a (id int);\n${sql};`));
    expect(error.code).toBe('FLO_TRANSACTION_CONTROL');
    expect(error.message).toContain('0003_tx.sql:2');
  });

  it('runs a whole file outside the transaction with -- flotilla:no-transaction', () => {
    const m = migration('0001_x', '-- flotilla:no-transaction\nUPDATE t SET a = 1 WHERE id < 10;\nUPDATE t SET a = 1 WHERE id >= 10;');
    expect(m.noTransaction).toBe(true);
    expect(m.statements.every((s) => s.nonTransactional === 'flotilla:no-transaction')).toBe(true);
  });

  it('reads directives from comments only: never from a string, a dollar-quoted body or an identifier', () => {
    const lookalikes = [
      "DELETE FROM t WHERE note = '\n-- flotilla:no-transaction\n';",
      'DO $$ BEGIN\n-- flotilla:no-transaction\nDELETE FROM t WHERE id = 1; END $$;',
      'CREATE TABLE "\n-- flotilla:no-transaction\n" (id int);',
      "INSERT INTO t (note) VALUES (E'it''s\\'\n-- flotilla:allow FD105 reason=\"x\"\n');",
      'SELECT 1; /* -- flotilla:no-transaction */',
    ];
    for (const sql of lookalikes) {
      const m = migration('0001_x', sql);
      expect(m.noTransaction, sql).toBe(false);
      expect(
        m.statements.every((s) => s.allows.length === 0 && s.nonTransactional === undefined),
        sql,
      ).toBe(true);
    }
    // A typo inside a string is no directive either, so not an error.
    expect(() => migration('0001_x', "SELECT '-- flotilla:no-transation';")).not.toThrow();
    // The same text as a real comment, after a string on the same line, is one.
    expect(migration('0001_x', "SELECT 'a'; -- flotilla:no-transaction").noTransaction).toBe(true);
  });

  it('refuses an unknown directive instead of ignoring a typo', () => {
    const error = thrown(() => migration('0001_x', '-- flotilla:no-transation\nSELECT 1;'));
    expect(error.code).toBe('FLO_DIRECTIVE_INVALID');
    expect(error.message).toContain('0001_x.sql:1');
  });

  it('records the schemas a migration creates', () => {
    expect(migration('0001_x', 'CREATE SCHEMA IF NOT EXISTS events; CREATE TABLE events.e (id int);').schemasCreated).toEqual(['events']);
  });

  it('reads an empty or comment-only file as a migration with no statements', () => {
    expect(migration('0001_x', '-- nothing yet\n').statements).toEqual([]);
  });

  describe('a file over a megabyte, parsed in pieces', () => {
    // The filler ends just before the size at which the text is first cut, so the first cut falls on a
    // semicolon of whatever follows: inside a BEGIN ATOMIC body, which the parser alone can tell.
    const filler = 'SELECT 1;\n'.repeat(104_855);
    const tricky = [
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;',
      "INSERT INTO t VALUES ('a;b', E'it\\'s; fine', $body$ x; y $body$);",
      '/* a; /* nested; */ comment; */ SELECT 3;',
      'DO $$ BEGIN PERFORM 1; END $$;',
    ].join('\n');

    it('finds the same statements, lines and texts as one parse of the whole file', () => {
      const m = migration('0001_big', `${filler}${tricky}\n${filler}SELECT 'last';\n`);
      expect(m.statements).toHaveLength(104_855 * 2 + 5);
      const after = m.statements.slice(104_855, 104_860);
      expect(after.map((s) => [s.kind, s.line])).toEqual([
        ['CreateFunctionStmt', 104_856],
        ['InsertStmt', 104_857],
        ['SelectStmt', 104_858],
        ['DoStmt', 104_859],
        ['SelectStmt', 104_860],
      ]);
      expect(after[0]!.sql).toBe('CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END');
      expect(after[1]!.sql).toBe("INSERT INTO t VALUES ('a;b', E'it\\'s; fine', $body$ x; y $body$)");
      expect(m.statements.at(-1)).toMatchObject({ sql: "SELECT 'last'", line: 104_855 * 2 + 5 });
    });

    it('reports a syntax error deep in the file at its own line', () => {
      const error = thrown(() => migration('0001_big', `${filler}${filler}SELEC 2;\n${filler}`));
      expect(error.code).toBe('FLO_SQL_SYNTAX');
      expect(error.meta).toMatchObject({ line: 104_855 * 2 + 1, column: 1 });
    });
  });

  it("keeps a data statement's facts, and parses its tree again only when asked for, equal to the first", () => {
    const m = migration('0001_x', "INSERT INTO public.t VALUES (1, 'a'), (2, nextval('public.s'));\nUPDATE t SET a = 1 WHERE id = 2;");
    const insert = m.statements[0]!;
    expect(insert).toMatchObject({ kind: 'InsertStmt', touches: ['t'], writes: ['t'], keepsData: true, unbounded: undefined, strings: ['a', 'public.s'] });
    expect(Object.keys(insert)).not.toContain('node');
    expect(insert.node).toEqual(parseOne(insert.sql));
    expect(insert.node).toBe(insert.node);
    // A schema tenant's rewrite still reaches the tree.
    const rewritten = rewriteForSchemaTenant(insert, { map: new Map([['public', 'tenant_x']]), file: 'x.sql' });
    expect(rewritten.sql).toContain('INSERT INTO tenant_x.t VALUES');
    expect(rewritten.sql).toContain('nextval(\'"tenant_x".s\')');
    const unchanged = rewriteForSchemaTenant(m.statements[1]!, { map: new Map([['public', 'tenant_x']]), file: 'x.sql' });
    expect(unchanged.node).toEqual(m.statements[1]!.node);
  });

  it('places a syntax error after non-ASCII text at its own line and column', () => {
    const error = thrown(() => migration('0001_x', "SELECT 'héllo wörld';\nSELECT 1 FROM;"));
    expect(error.meta).toMatchObject({ line: 2, column: 14 });
  });

  it('refuses a big file whose last statement never ends, at that statement', () => {
    const filler = 'SELECT 1;\n'.repeat(300_000);
    const error = thrown(() => migration('0001_x', `${filler}CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; ${'SELECT 2; '.repeat(200_000)}`));
    expect(error.code).toBe('FLO_SQL_SYNTAX');
    expect(error.meta.line).toBe(300_001);
  });
});
