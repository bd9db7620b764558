import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MigrationSet } from '../../src/core/migration-set.js';
import { loadMigrationSet } from '../../src/core/migration-set.js';
import { isNode, nameList, stringField, unwrap, walk } from '../../src/core/sql/ast.js';
import type { LintReport } from '../../src/core/lint/lint.js';
import { lintMigrations } from '../../src/core/lint/lint.js';
import { corpusDir, hasCorpus } from '../support/corpus.js';

describe.skipIf(!hasCorpus)('lint over the real trigger.dev corpus', () => {
  let set: MigrationSet;
  let report: LintReport;
  const at = (code: string) =>
    report.findings
      .filter((f) => f.code === code)
      .map((f) => `${f.file}:${f.line}`)
      .sort();

  beforeAll(async () => {
    set = await loadMigrationSet(corpusDir());
    report = lintMigrations(set.migrations, { schemaTenants: true });
  });

  it('reports every DROP TABLE, counted independently from the parsed tree, with file and line', () => {
    const expected = set.migrations.flatMap((m) =>
      m.statements
        .filter((s) => s.kind === 'DropStmt' && unwrap(s.node).removeType === 'OBJECT_TABLE')
        .flatMap((s) => (unwrap(s.node).objects as unknown[]).map(() => `${m.path}:${s.line}`)),
    );
    expect(expected.length).toBeGreaterThan(50);
    expect(at('FD102')).toEqual(expected.sort());
  });

  it('reports every DROP COLUMN, counted independently from the parsed tree, with file and line', () => {
    const expected: string[] = [];
    for (const m of set.migrations) {
      for (const s of m.statements) {
        if (s.kind !== 'AlterTableStmt') continue;
        for (const cmd of unwrap(s.node).cmds as { AlterTableCmd: { subtype: string } }[]) if (cmd.AlterTableCmd.subtype === 'AT_DropColumn') expected.push(`${m.path}:${s.line}`);
      }
    }
    expect(expected.length).toBeGreaterThan(100);
    expect(at('FD103')).toEqual(expected.sort());
  });

  it('reports the 87 files that hard-code "public". (for schema tenants), and only those', () => {
    const files = new Set(report.findings.filter((f) => f.code === 'FN601' && f.message.includes('public')).map((f) => f.file));
    const byText = set.migrations.filter((m) => m.sql.includes('"public".')).map((m) => m.path);
    expect(files.size).toBe(87);
    expect([...files].sort()).toEqual(byText.sort());
  });

  it('reports CREATE INDEX without CONCURRENTLY on tables created by earlier files', () => {
    const expected: string[] = [];
    const tables = new Map<string, string>();
    for (const m of set.migrations) {
      for (const s of m.statements) {
        const body = unwrap(s.node);
        const rel = isNode(body.relation) ? stringField(body.relation, 'relname') : undefined;
        if (s.kind === 'IndexStmt' && !body.concurrent && rel && tables.has(rel) && tables.get(rel) !== m.id) expected.push(`${m.path}:${s.line}`);
        if (s.kind === 'CreateStmt' && rel && !tables.has(rel)) tables.set(rel, m.id);
        if (s.kind === 'DropStmt' && body.removeType === 'OBJECT_TABLE') {
          walk(body.objects, (node) => {
            const names = isNode(node.List) ? nameList(node.List.items) : undefined;
            if (names) tables.delete(names[names.length - 1]!);
          });
        }
        if (s.kind === 'RenameStmt' && body.renameType === 'OBJECT_TABLE' && rel && tables.has(rel)) {
          tables.set(String(body.newname), tables.get(rel)!);
          tables.delete(rel);
        }
      }
    }
    expect(expected.length).toBeGreaterThan(50);
    expect(at('FL301')).toEqual(expected.sort());
  });

  it('names the statement and what to do for each finding', () => {
    const sample = report.findings.find((f) => f.code === 'FD103')!;
    const text = readFileSync(join(corpusDir(), sample.file), 'utf8').split('\n')[sample.line - 1]!;
    // The reported line is where the statement starts in the file.
    expect(text.trim()).toBe(sample.statement.trim());
    expect(sample.instead).toContain('later release');
  });
});
