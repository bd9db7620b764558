import { FlotillaError } from '../core/errors.js';
import { queryRows } from '../postgres/target-session.js';
import { verifyAnswer } from '../postgres/tenant-role.js';
import type { RunContext } from './run-context.js';

/** Runs the plan's verify files in the transaction: each query must return no rows or a single `true`. */
export async function runVerifyFiles(context: RunContext): Promise<void> {
  for (const step of context.plan.steps) {
    const path = step.migration.verify?.path;
    for (const query of step.migration.verifyStatements) {
      // A schema tenant's verify queries are its own code: they run as its role, which counts the answer.
      if (context.runner) {
        const { runner } = context;
        const counted = await Promise.resolve()
          .then(() => verifyAnswer(runner, query.sql))
          .catch((cause: Error) => {
            throw verifyError(context.target.tenant, `${path}:${query.line}`, cause.message, cause);
          });
        if (counted.rows !== 0 && !(counted.rows === 1 && counted.fine === 1))
          throw verifyError(context.target.tenant, `${path}:${query.line}`, `returned ${counted.rows} row${counted.rows === 1 ? '' : 's'}, not a single true`);
        continue;
      }
      let rows: Record<string, unknown>[];
      try {
        rows = await queryRows(context.client, query.sql);
      } catch (cause) {
        throw verifyError(context.target.tenant, `${path}:${query.line}`, (cause as Error).message, cause);
      }
      const values = rows.map((row) => Object.values(row));
      const holds = rows.length === 0 || (rows.length === 1 && values[0]!.length === 1 && values[0]![0] === true);
      if (!holds)
        throw verifyError(
          context.target.tenant,
          `${path}:${query.line}`,
          `returned ${JSON.stringify(values.slice(0, 3))}${rows.length > 3 ? ` and ${rows.length - 3} more rows` : ''}`,
        );
    }
  }
}

function verifyError(tenant: string, where: string, what: string, cause?: unknown): FlotillaError {
  return new FlotillaError('FLO_VERIFY_FAILED', `Tenant ${tenant}: verify query ${where} ${what}; the upgrade was rolled back.`, {
    hint: 'A verify query must return no rows or a single true. Fix the migration (or the data), or the verify file, and run migrate again.',
    meta: { tenant, where, result: what },
    ...(cause ? { cause } : {}),
  });
}
