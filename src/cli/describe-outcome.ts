import { describeLoss } from '../core/verification.js';
import type { TenantOutcome } from '../flotilla.js';

/** One line (or a few) per tenant, as `migrate` prints them live. */
export function describeOutcome(outcome: TenantOutcome): string {
  const ms = `${Math.round(outcome.durationMs)} ms`;
  switch (outcome.status) {
    case 'failed':
      return `✗ ${outcome.tenant}: ${outcome.error.code} ${outcome.error.message}\n    what to do: ${outcome.error.hint ?? ''}`;
    case 'skipped':
      return 'reason' in outcome ? `- ${outcome.tenant}: skipped (${outcome.reason})` : `- ${outcome.tenant}: up to date at ${outcome.toVersion ?? 'no migrations'}`;
    case 'planned':
    case 'succeeded': {
      const verb = outcome.status === 'planned' ? 'would apply' : 'applied';
      const extra = [
        outcome.rewritten ? `${outcome.rewritten} statements rewritten for the tenant schema` : '',
        outcome.outsideTransaction ? `${outcome.outsideTransaction} outside the transaction` : '',
        outcome.splits.length ? `${outcome.splits.length} commit points: ${outcome.splits.map((s) => `${s.before} (${s.reason})`).join('; ')}` : '',
        outcome.backup ? `${outcome.backup.id ? `backup ${outcome.backup.id.slice(0, 8)} taken first` : 'would take a backup first'} (${outcome.backup.reasons.slice(0, 3).join(', ')}${outcome.backup.reasons.length > 3 ? ', …' : ''})` : '',
        outcome.verification && outcome.verification.tables > 0 ? `${outcome.verification.tables} tables verified` : '',
        ...(outcome.verification?.allowedLosses ?? []).map((l) => `allowed: ${describeLoss(l)} — ${l.allowedBecause}`),
      ].filter(Boolean);
      const list = outcome.status === 'planned' ? `\n    ${outcome.migrations.join('\n    ')}` : '';
      return `✓ ${outcome.tenant}: ${verb} ${outcome.migrations.length} migrations (${outcome.statements} statements, ${outcome.fromVersion ?? 'empty'} → ${outcome.toVersion}) in ${ms}${extra.length ? `; ${extra.join('; ')}` : ''}${list}`;
    }
  }
}
