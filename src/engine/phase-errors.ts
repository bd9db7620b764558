import { FlotillaError, toFlotillaError } from '../core/errors.js';
import type { Phase } from '../core/schedule.js';

/** What one phase did, as a message names it once it is committed. */
export function describePhase(phase: Phase): string {
  if (phase.kind === 'outside') return `${phase.statement.migration.path}:${phase.statement.statement.line}`;
  const ids = [...new Set(phase.statements.map((s) => s.migration.id))];
  return `the transaction of ${ids.join(', ')}`;
}

/**
 * The error of a failed phase, saying which phase it was and exactly what of
 * this run was kept: the phases committed before it (recorded in the history,
 * so the next run resumes after them) and, for a statement outside a
 * transaction, that nothing rolls it back.
 */
export function phaseError(error: unknown, phase: Phase, position: { index: number; total: number }, kept: readonly string[], tenant: string): FlotillaError {
  const failure = toFlotillaError(error);
  const where = `phase ${position.index + 1} of ${position.total}, ${phase.kind === 'outside' ? `outside a transaction (${phase.reason})` : 'a transaction'}`;
  // The usual case, one transaction and nothing before it: the statement's own message says it all.
  if (kept.length === 0 && phase.kind === 'transaction') return failure;
  const keptText = kept.length > 0 ? `Kept from this run, committed and recorded: ${kept.join('; ')}.` : 'Nothing of this run was committed before it.';
  const thisPhase =
    phase.kind === 'transaction'
      ? 'This transaction was rolled back: nothing of it was kept.'
      : `This statement ran outside a transaction, so nothing rolls it back: whatever of it PostgreSQL completed stays${isIndexBuild(phase) ? ' (an index it left INVALID is dropped and built again by the next run)' : ''}.`;
  return new FlotillaError(failure.code, `${failure.message} [${where}]`, {
    hint: `${thisPhase} ${keptText} The tenant is not as it was before the run: fix the cause, then run migrate again to resume from here (or restore the backup taken before the run, if one was).`,
    meta: { ...failure.meta, tenant, phase: position.index + 1, kept: [...kept] },
    cause: failure.cause ?? failure,
  });
}

function isIndexBuild(phase: Phase & { kind: 'outside' }): boolean {
  return phase.statement.statement.kind === 'IndexStmt';
}
