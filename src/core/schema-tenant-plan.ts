import type { ParsedMigration } from './migration.js';
import type { Plan } from './plan.js';
import { rewriteForSchemaTenant } from './sql/schema-rewrite.js';

/**
 * The plan as a schema tenant runs it: every planned migration with its schema
 * references rewritten to the tenant's own schemas. Reports how many statements
 * were rewritten, so that the plan says so.
 */
export function planForSchemaTenant(
  plan: Plan<ParsedMigration>,
  map: ReadonlyMap<string, string>,
): { plan: Plan<ParsedMigration>; rewritten: number } {
  let rewritten = 0;
  const steps = plan.steps.map((step) => {
    const statements = step.migration.statements.map((statement) => {
      const result = rewriteForSchemaTenant(statement, { map, file: step.migration.path });
      if (result.rewritten) rewritten++;
      return result;
    });
    const verifyStatements = step.migration.verifyStatements.map((statement) => rewriteForSchemaTenant(statement, { map, file: step.migration.verify?.path ?? step.migration.path }));
    return { ...step, migration: { ...step.migration, statements, verifyStatements } };
  });
  return { plan: { ...plan, steps }, rewritten };
}
