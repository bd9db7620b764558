import { FlotillaError } from './errors.js';
import type { ParsedMigration } from './migration.js';
import type { Plan } from './plan.js';
import { rewriteForSchemaTenant } from './sql/schema-rewrite.js';

/**
 * The plan as a schema tenant runs it: every planned migration with its schema
 * references rewritten to the tenant's own schemas. Reports how many statements
 * were rewritten, so that the plan says so.
 */
export function planForSchemaTenant(plan: Plan<ParsedMigration>, map: ReadonlyMap<string, string>): { plan: Plan<ParsedMigration>; rewritten: number } {
  let rewritten = 0;
  const steps = plan.steps.map((step) => {
    const statements = step.migration.statements.map((statement) => {
      // Its migrations run under the tenant's own role: one that could leave it could reach any tenant.
      if (statement.changesRole) {
        throw new FlotillaError(
          'FLO_SCHEMA_ESCAPE',
          `${step.migration.path}:${statement.line}: this statement changes (or has code that may change) the role it runs as, which a schema tenant's migration may not.`,
          {
            hint: "Remove the SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, RESET ALL or DISCARD (also inside DO blocks and function bodies): a schema tenant's migrations run under its own role, so that they cannot reach another tenant.",
            meta: { file: step.migration.path, line: statement.line },
          },
        );
      }
      const result = rewriteForSchemaTenant(statement, { map, file: step.migration.path });
      if (result.rewritten) rewritten++;
      return result;
    });
    const verifyStatements = step.migration.verifyStatements.map((statement) =>
      rewriteForSchemaTenant(statement, { map, file: step.migration.verify?.path ?? step.migration.path }),
    );
    return { ...step, migration: { ...step.migration, statements, verifyStatements } };
  });
  return { plan: { ...plan, steps }, rewritten };
}
