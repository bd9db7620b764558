import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../src/core/errors.js';
import { rewriteForSchemaTenant, tenantSchemaMap } from '../../src/core/sql/schema-rewrite.js';
import { migration } from '../support/migrations.js';

const map = tenantSchemaMap('tenant_acme', ['events']);

function rewrite(sql: string) {
  const m = migration('0001_x', sql);
  return rewriteForSchemaTenant(m.statements[0]!, { map, file: m.path });
}

describe('rewriting migrations for a schema tenant', () => {
  it('maps public to the tenant schema and other schemas to schemas of its own', () => {
    expect([...map]).toEqual([
      ['public', 'tenant_acme'],
      ['events', 'tenant_acme__events'],
    ]);
  });

  it('keeps unqualified statements as written (search_path puts them in the tenant schema)', () => {
    const result = rewrite('CREATE TABLE "User" (id text PRIMARY KEY)');
    expect(result.rewritten).toBe(false);
    expect(result.sql).toBe('CREATE TABLE "User" (id text PRIMARY KEY)');
  });

  it.each([
    ['ALTER TABLE "public"."User" ADD COLUMN x int', 'ALTER TABLE tenant_acme."User" ADD COLUMN x int'],
    ['CREATE INDEX i ON "public"."User" ("x")', 'CREATE INDEX i ON tenant_acme."User" (x)'],
    [`CREATE TYPE "public"."Status" AS ENUM ('A')`, `CREATE TYPE tenant_acme."Status" AS ENUM ('A')`],
    ['CREATE TABLE t (s "public"."Status" NOT NULL)', 'tenant_acme."Status"'],
    ['ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES "public"."U"(id)', 'REFERENCES tenant_acme."U"'],
    ['ALTER TYPE "public"."Status" ADD VALUE \'B\'', 'ALTER TYPE tenant_acme."Status" ADD VALUE'],
    ['DROP TABLE "public"."Old"', 'DROP TABLE tenant_acme."Old"'],
    ['CREATE SCHEMA IF NOT EXISTS events', 'CREATE SCHEMA IF NOT EXISTS tenant_acme__events'],
    ['CREATE TABLE events.e (id serial)', 'CREATE TABLE tenant_acme__events.e'],
    ['SET search_path TO public', 'tenant_acme'],
    // Names inside strings, where PostgreSQL reads them as names: casts to reg* types and sequence functions.
    ["ALTER TABLE ONLY public.accounts ALTER COLUMN id SET DEFAULT nextval('public.accounts_id_seq'::regclass)", `nextval(CAST('"tenant_acme".accounts_id_seq' AS regclass))`],
    [`SELECT setval('"public"."User_id_seq"', 42)`, `setval('"tenant_acme"."User_id_seq"', 42)`],
    [`SELECT 'events.e'::regclass`, `CAST('"tenant_acme__events".e' AS regclass)`],
    [`SELECT 'public'::regnamespace`, `CAST('"tenant_acme"' AS regnamespace)`],
  ])('rewrites %s', (sql, expected) => {
    const result = rewrite(sql);
    expect(result.rewritten).toBe(true);
    expect(result.sql.replace(/\s+/g, ' ')).toContain(expected);
    expect(result.sql).not.toMatch(/\bpublic\b/);
  });

  it('rewrites schema references inside PL/pgSQL bodies with the SQL scanner, leaving strings alone', () => {
    const result = rewrite(`DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'public.kept') THEN
    ALTER TABLE "public"."T" ADD CONSTRAINT c FOREIGN KEY (p) REFERENCES public."P" (id);
  END IF;
END $$`);
    expect(result.rewritten).toBe(true);
    expect(result.sql).toContain('ALTER TABLE "tenant_acme"."T"');
    expect(result.sql).toContain('REFERENCES "tenant_acme"."P"');
    expect(result.sql).toContain("'public.kept'");
  });

  it('refuses a statement that reaches a schema the tenant does not own', () => {
    try {
      rewrite('CREATE TABLE billing.invoices (id int)');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FlotillaError);
      expect((error as FlotillaError).code).toBe('FLO_SCHEMA_ESCAPE');
      expect((error as FlotillaError).message).toContain('"billing"');
    }
  });

  it('lets statements read system schemas', () => {
    expect(rewrite('SELECT pg_catalog.now()').rewritten).toBe(false);
  });

  it("keeps derived schema names within PostgreSQL's 63-byte limit, distinctly", () => {
    const long = tenantSchemaMap(`tenant_${'a'.repeat(41)}`, ['triggerdotdev_events', 'triggerdotdev_events_2']);
    const names = [...long.values()].slice(1);
    expect(names.every((n) => Buffer.byteLength(n) <= 63)).toBe(true);
    expect(new Set(names).size).toBe(2);
  });
});
