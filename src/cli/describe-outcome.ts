import { describeLoss, describeOverwrite } from '../core/verification.js';
import type { TenantOutcome } from '../core/outcomes.js';

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
        outcome.rewritten ? `${plural(outcome.rewritten, 'statement')} rewritten for the tenant schema` : '',
        outcome.outsideTransaction ? `${outcome.outsideTransaction} outside the transaction` : '',
        outcome.splits.length ? `${outcome.splits.length} commit points: ${outcome.splits.map((s) => `${s.before} (${s.reason})`).join('; ')}` : '',
        outcome.backup
          ? `${outcome.backup.id ? `backup ${outcome.backup.id.slice(0, 8)} taken first` : 'would take a backup first'} (${outcome.backup.reasons.slice(0, 3).join(', ')}${outcome.backup.reasons.length > 3 ? ', …' : ''})`
          : '',
        outcome.verification && outcome.verification.tables > 0 ? `${plural(outcome.verification.tables, 'table')} verified` : '',
        ...(outcome.verification?.allowedLosses ?? []).map((l) => `allowed: ${describeLoss(l)} — ${l.allowedBecause}`),
        ...(outcome.verification?.overwrites ?? []).map((o) => `changed: ${describeOverwrite(o)}${o.allowedBecause ? ` — ${o.allowedBecause}` : ''}`),
        ...(outcome.status === 'planned' ? (outcome.mayOverwrite ?? []).map((what) => `may overwrite: ${what}`) : []),
      ].filter(Boolean);
      const list = outcome.status === 'planned' ? `\n    ${outcome.migrations.join('\n    ')}` : '';
      return `✓ ${outcome.tenant}: ${verb} ${plural(outcome.migrations.length, 'migration')} (${plural(outcome.statements, 'statement')}, ${outcome.fromVersion ?? 'empty'} → ${outcome.toVersion}) in ${ms}${extra.length ? `; ${extra.join('; ')}` : ''}${list}`;
    }
  }
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
