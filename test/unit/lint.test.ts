import { describe, expect, it } from 'vitest';
import type { LintOptions } from '../../src/core/lint/lint.js';
import { lintMigrations } from '../../src/core/lint/lint.js';
import { migration } from '../support/migrations.js';

const BASE = migration(
  '0001_base',
  `CREATE TABLE accounts (id serial PRIMARY KEY, owner text, balance int);
CREATE TYPE status AS ENUM ('a', 'b');
CREATE TABLE orders (id serial PRIMARY KEY, account_id int, state status);`,
);

function lint(sql: string, options: LintOptions = {}) {
  const report = lintMigrations([BASE, migration('0002_change', sql)], options);
  return { ...report, codes: report.findings.filter((f) => f.migration === '0002_change').map((f) => f.code) };
}

describe('lint', () => {
  it.each([
    ['DROP SCHEMA billing CASCADE', 'FD101'],
    ['DROP TABLE orders', 'FD102'],
    ['ALTER TABLE accounts DROP COLUMN owner', 'FD103'],
    ['TRUNCATE accounts', 'FD104'],
    ['DELETE FROM accounts', 'FD105'],
    ['UPDATE accounts SET balance = 0', 'FD106'],
    ['DROP TYPE status', 'FD107'],
  ])('reports %s as destructive (%s, an error)', (sql, code) => {
    const report = lint(sql);
    expect(report.codes).toEqual([code]);
    expect(report.errors).toBe(1);
    const finding = report.findings.find((f) => f.code === code)!;
    expect(finding).toMatchObject({ severity: 'error', family: 'destructive', file: '0002_change.sql', line: 1 });
    expect(finding.message.length).toBeGreaterThan(20);
    expect(finding.instead.length).toBeGreaterThan(20);
  });

  it('does not report a DELETE or UPDATE with a WHERE, or a type nobody uses', () => {
    expect(lint("DELETE FROM accounts WHERE owner = 'x'; UPDATE accounts SET balance = 0 WHERE balance IS NULL").codes).toEqual([]);
    expect(lintMigrations([migration('0001_a', "CREATE TYPE t AS ENUM ('x'); DROP TYPE t;")]).findings.map((f) => f.code)).toEqual([]);
  });

  it.each([
    ['CREATE UNIQUE INDEX CONCURRENTLY accounts_owner ON accounts (owner)', ['FM201']],
    ['ALTER TABLE accounts ADD CONSTRAINT owner_unique UNIQUE (owner)', ['FM201']],
    ['ALTER TABLE accounts ALTER COLUMN owner SET NOT NULL', ['FM202']],
    ['ALTER TABLE accounts ADD COLUMN currency text NOT NULL', ['FM203']],
    ['ALTER TABLE accounts ALTER COLUMN balance TYPE bigint', ['FM204', 'FL302']],
    ['ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES accounts (id)', ['FM205']],
    ['ALTER TABLE accounts ADD CONSTRAINT positive CHECK (balance > 0)', ['FM206']],
    ['CREATE INDEX accounts_owner ON accounts (owner)', ['FL301']],
    ['ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid()', ['FL302']],
  ])('reports %s on an existing table', (sql, codes) => {
    expect(lint(sql).codes).toEqual(codes);
  });

  it('accepts the safe forms', () => {
    expect(
      lint(`ALTER TABLE accounts ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
ALTER TABLE accounts ADD CONSTRAINT positive CHECK (balance > 0) NOT VALID;
ALTER TABLE accounts ADD COLUMN created timestamptz DEFAULT now();`).codes,
    ).toEqual([]);
    expect(lint('CREATE INDEX CONCURRENTLY accounts_owner ON accounts (owner)').codes).toEqual([]);
  });

  it('treats a table created in the same file as new, not existing', () => {
    const report = lintMigrations([
      migration('0001_a', 'CREATE TABLE t (id int); CREATE UNIQUE INDEX t_id ON t (id); ALTER TABLE t ALTER COLUMN id SET NOT NULL; ALTER TABLE t ALTER COLUMN id TYPE bigint;'),
    ]);
    expect(report.findings).toEqual([]);
  });

  it('follows renames in its model of the schema', () => {
    const report = lintMigrations([BASE, migration('0002_r', 'ALTER TABLE accounts RENAME TO wallets;'), migration('0003_i', 'CREATE INDEX w ON wallets (owner);')]);
    expect(report.findings.map((f) => [f.migration, f.code])).toEqual([
      ['0002_r', 'FB501'],
      ['0003_i', 'FL301'],
    ]);
  });

  it('reports renames as backward-incompatible', () => {
    expect(lint('ALTER TABLE accounts RENAME COLUMN owner TO holder').codes).toEqual(['FB502']);
  });

  it('reports lock_timeout only when the engine does not set one', () => {
    expect(lint('ALTER TABLE accounts ADD COLUMN x int', { engineSetsLockTimeout: false }).codes).toEqual(['FL303']);
    expect(lint("SET lock_timeout = '5s'; ALTER TABLE accounts ADD COLUMN x int", { engineSetsLockTimeout: false }).codes).toEqual([]);
    expect(lint('ALTER TABLE accounts ADD COLUMN x int').codes).toEqual([]);
  });

  it('reports transaction problems', () => {
    expect(lint('CREATE INDEX CONCURRENTLY o ON orders (state); UPDATE orders SET state = NULL WHERE id < 0').codes).toEqual(['FT401']);
    expect(lint('BEGIN; ALTER TABLE accounts ADD COLUMN x int; COMMIT;').codes).toEqual(['FT402', 'FT402']);
  });

  it('reports hard-coded schemas and schemas a tenant would not own when schema tenants exist', () => {
    expect(lint('ALTER TABLE "public"."accounts" ADD COLUMN x int').codes).toEqual([]);
    const report = lint('ALTER TABLE "public"."accounts" ADD COLUMN x int; CREATE TABLE audit.log (id int);', { schemaTenants: true });
    expect(report.codes).toEqual(['FN601', 'FN602']);
    expect(report.findings.find((f) => f.code === 'FN601')!.message).toContain('public');
  });

  it('requires the tenant column and row-level security on new tables when tables are shared', () => {
    const options = { tenantColumn: 'tenant_id', globalTables: ['countries'] };
    expect(lint('CREATE TABLE notes (id int);', options).codes).toEqual(['FN603', 'FN604']);
    expect(lint('CREATE TABLE notes (id int, tenant_id uuid NOT NULL); ALTER TABLE notes ENABLE ROW LEVEL SECURITY;', options).codes).toEqual([]);
    expect(lint('CREATE TABLE countries (code text);', options).codes).toEqual([]);
  });

  describe('allow directives', () => {
    it('allows a finding with a reason, on the line above or at the end of the statement', () => {
      const report = lint(`-- flotilla:allow FD102 reason="orders moved to the billing service"
DROP TABLE orders;
ALTER TABLE accounts DROP COLUMN owner; -- flotilla:allow FD103 reason="owner is now in profiles"`);
      expect(report.errors).toBe(0);
      expect(report.findings.map((f) => [f.code, f.allowedBecause])).toEqual([
        ['FD102', 'orders moved to the billing service'],
        ['FD103', 'owner is now in profiles'],
      ]);
    });

    it('refuses a bare allow, which allows nothing', () => {
      const report = lint('-- flotilla:allow FD102\nDROP TABLE orders;');
      expect(report.codes.sort()).toEqual(['FD102', 'FX901']);
      expect(report.errors).toBe(2);
    });

    it('reports an unknown code, an allow that matches nothing, and one next to no statement', () => {
      expect(lint('-- flotilla:allow FD999 reason="typo"\nDROP TABLE orders;').codes.sort()).toEqual(['FD102', 'FX902']);
      expect(lint('-- flotilla:allow FD103 reason="wrong code"\nDROP TABLE orders;').codes.sort()).toEqual(['FD102', 'FX903']);
      expect(lint('DROP TABLE orders;\n-- flotilla:allow FD102 reason="too late"\n').codes.sort()).toEqual(['FD102', 'FX904']);
    });

    it('does not reach past another statement', () => {
      const report = lint('-- flotilla:allow FD102 reason="for orders"\nSELECT 1;\nDROP TABLE orders;');
      expect(report.findings.find((f) => f.code === 'FD102')!.allowedBecause).toBeNull();
    });
  });

  it('passes the scenario S1 migration: warnings only, no errors', () => {
    const report = lint(`ALTER TABLE accounts ADD COLUMN client_id integer;
UPDATE accounts SET client_id = 1 WHERE client_id IS NULL;
ALTER TABLE accounts ALTER COLUMN client_id SET NOT NULL;`);
    expect(report.errors).toBe(0);
    expect(report.codes).toEqual(['FM202']);
  });
});

describe('lint of what destroys by dependency', () => {
  const codes = (...files: [string, string][]) =>
    lintMigrations(files.map(([id, sql]) => migration(id, sql)))
      .findings.filter((f) => f.allowedBecause === null)
      .map((f) => `${f.code}@${f.migration}:${f.line}`);
  it('reports CASCADE, DROP OWNED, large objects and DML without WHERE nested in another statement', () => {
    expect(codes(['0001_a', 'DROP TABLE a CASCADE;\nTRUNCATE b CASCADE;\nALTER TABLE c DROP COLUMN x CASCADE;'])).toEqual([
      'FD108@0001_a:1',
      'FD102@0001_a:1',
      'FD108@0001_a:2',
      'FD104@0001_a:2',
      'FD103@0001_a:3',
      'FD108@0001_a:3',
    ]);
    expect(codes(['0001_a', 'DROP OWNED BY app_user;'])).toEqual(['FD109@0001_a:1']);
    expect(codes(['0001_a', 'SELECT lo_unlink(file_oid) FROM attachments WHERE id < 3;'])).toEqual(['FD111@0001_a:1']);
    expect(codes(['0001_a', 'WITH gone AS (DELETE FROM members RETURNING *) INSERT INTO archive SELECT * FROM gone;'])).toEqual(['FD105@0001_a:1']);
  });
  it('reports drops of a domain, an extension or a function that something uses, naming the users', () => {
    const base: [string, string] = [
      '0001_base',
      `CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE accounts (id int PRIMARY KEY, balance positive, email citext);
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER accounts_audit AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION audit();`,
    ];
    const findings = lintMigrations([
      migration(...base),
      migration('0002_drops', 'DROP DOMAIN positive;\nDROP EXTENSION citext;\nDROP FUNCTION audit();\nDROP FUNCTION unused();'),
    ]).findings.filter((f) => f.code === 'FD110');
    expect(findings.map((f) => [f.line, f.message])).toEqual([
      [1, 'DROP DOMAIN positive: columns of public.accounts use it.'],
      [2, 'DROP EXTENSION citext: columns of public.accounts use its type.'],
      [3, 'DROP FUNCTION audit: triggers accounts.accounts_audit run it.'],
    ]);
  });
  it('warns of a data change outside the transaction', () => {
    expect(codes(['0001_a', '-- flotilla:no-transaction\nDELETE FROM a WHERE id = 1;\nCREATE INDEX CONCURRENTLY a_x ON a (x);'])).toEqual(['FT403@0001_a:2']);
  });
});
