import { describe, expect, it } from 'vitest';
import type { AppliedMigration } from '../../src/core/plan.js';
import { plan, planProblemsToError } from '../../src/core/plan.js';
import { migration } from '../support/migrations.js';

const m1 = migration('0001_a', 'CREATE TABLE a (id int);');
const m2 = migration('0002_b', 'CREATE TABLE b (id int); CREATE TABLE c (id int);');
const m3 = migration('0003_c', 'CREATE TABLE d (id int);');
const applied = (...ms: (typeof m1)[]): AppliedMigration[] => ms.map((m) => ({ version: m.version, name: m.name, checksum: m.checksum, remaining: [] }));

describe('plan', () => {
  it('plans every migration, in order, for a new tenant', () => {
    const result = plan([m1, m2, m3], []);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.plan.steps.map((s) => s.migration.id)).toEqual(['0001_a', '0002_b', '0003_c']);
    expect(result.plan.steps[1]!.statements).toEqual([0, 1]);
    expect(result.plan.currentVersion).toBeNull();
    expect(result.plan.targetVersion).toBe('0003');
  });

  it('plans only what is pending, by set comparison', () => {
    const result = plan([m1, m2, m3], applied(m1, m2));
    expect(result.ok && result.plan.steps.map((s) => s.migration.id)).toEqual(['0003_c']);
    expect(result.ok && result.plan.currentVersion).toBe('0002');
  });

  it('plans nothing when the tenant is up to date', () => {
    const result = plan([m1, m2], applied(m1, m2));
    expect(result.ok && result.plan.steps).toEqual([]);
  });

  it('refuses an applied migration whose checksum changed', () => {
    const result = plan([m1, m2], [...applied(m1), { ...applied(m2)[0]!, checksum: 'f'.repeat(64) }]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.code)).toEqual(['FLO_CHECKSUM_CHANGED']);
    expect(result.problems[0]!.message).toContain('0002_b.sql');
  });

  it('refuses an applied migration missing from disk', () => {
    const result = plan([m1, m3], applied(m1, m2));
    expect(!result.ok && result.problems.map((p) => p.code)).toEqual(['FLO_MIGRATION_MISSING']);
  });

  it('refuses a pending migration older than the newest applied one, unless allowed', () => {
    const refused = plan([m1, m2, m3], applied(m1, m3));
    expect(!refused.ok && refused.problems.map((p) => [p.code, p.version])).toEqual([['FLO_OUT_OF_ORDER', '0002']]);
    const allowed = plan([m1, m2, m3], applied(m1, m3), { allowOutOfOrder: true });
    expect(allowed.ok && allowed.plan.steps.map((s) => s.migration.id)).toEqual(['0002_b']);
  });

  it('orders two migrations that share a version by name', () => {
    const x = migration('0002_alpha', 'SELECT 1;');
    const result = plan([m1, x, m2], []);
    expect(result.ok && result.plan.steps.map((s) => s.migration.id)).toEqual(['0001_a', '0002_alpha', '0002_b']);
  });

  it('resumes a partly applied migration with only its remaining statements', () => {
    const rows = [...applied(m1), { ...applied(m2)[0]!, remaining: [1] }];
    const result = plan([m1, m2, m3], rows);
    expect(result.ok && result.plan.steps.map((s) => [s.migration.id, s.statements, s.resumed])).toEqual([
      ['0002_b', [1], true],
      ['0003_c', [0], false],
    ]);
  });

  it('stops at a target version', () => {
    const result = plan([m1, m2, m3], [], { target: '0002' });
    expect(result.ok && result.plan.steps.map((s) => s.migration.id)).toEqual(['0001_a', '0002_b']);
  });

  it('reports every problem at once and turns them into one typed error', () => {
    const result = plan([m2, m3], [...applied(m1), { ...applied(m2)[0]!, checksum: 'x' }]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.code).sort()).toEqual(['FLO_CHECKSUM_CHANGED', 'FLO_MIGRATION_MISSING']);
    const error = planProblemsToError(result.problems, 'acme');
    expect(error.code).toBe(result.problems[0]!.code);
    expect(error.message).toMatch(/^Tenant acme: .*\(and 1 more problem\)$/);
    expect(error.hint).toBeTruthy();
  });
});
