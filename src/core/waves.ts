import { FlotillaError } from './errors.js';

export interface WavePlacement {
  readonly tenant: string;
  /** 0 is the canary wave. */
  readonly wave: number;
  readonly position: number;
}

/**
 * Canary first (`3`, `5%` or `acme,globex`), then the rest in waves of
 * `waveSize` (one wave when not given), keeping the given order. Pure.
 */
export function assignWaves(ordered: readonly string[], options: { canary?: string; waveSize?: number }): WavePlacement[] {
  const canary = new Set(canaryTenants(ordered, options.canary));
  const rest = ordered.filter((t) => !canary.has(t));
  const size = options.waveSize && options.waveSize > 0 ? options.waveSize : Math.max(1, rest.length);
  const placements: WavePlacement[] = [];
  let position = 0;
  for (const tenant of ordered) if (canary.has(tenant)) placements.push({ tenant, wave: 0, position: position++ });
  for (const [i, tenant] of rest.entries()) placements.push({ tenant, wave: 1 + Math.floor(i / size), position: position++ });
  return placements;
}

function canaryTenants(ordered: readonly string[], spec: string | undefined): string[] {
  if (spec === undefined || spec === '' || spec === '0') return [];
  const percent = share('canary', spec);
  if (percent !== undefined) return ordered.slice(0, Math.max(1, Math.ceil((percent / 100) * ordered.length)));
  if (/^\d+$/.test(spec)) return ordered.slice(0, Number(spec));
  const slugs = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = slugs.filter((s) => !ordered.includes(s));
  if (unknown.length > 0) {
    throw new FlotillaError(
      'FLO_USAGE',
      `Canary tenant${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not in this rollout's selection.`,
      {
        hint: 'Give the canary as a count (3), a share (5%) or slugs of selected tenants (acme,globex).',
        meta: { unknown },
      },
    );
  }
  return slugs;
}

/** `--max-failures 3` or `5%` (of the rollout's tenants) → how many failures are tolerated; undefined: no budget. */
export function failureBudget(spec: string | undefined, total: number): number | undefined {
  if (spec === undefined) return undefined;
  const percent = share('maxFailures', spec);
  if (percent !== undefined) return Math.floor((percent / 100) * total);
  if (/^\d+$/.test(spec)) return Number(spec);
  throw new FlotillaError('FLO_USAGE', `maxFailures ${spec} is neither a count nor a percentage.`, { hint: 'For example 2, or 5%.' });
}

/** `5%` → 5; undefined when `spec` is not a percentage; a share over 100 % is refused. */
function share(option: string, spec: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (!match) return undefined;
  const percent = Number(match[1]);
  if (percent > 100) throw new FlotillaError('FLO_USAGE', `${option} ${spec} is more than all the tenants.`, { hint: `Give a share from 0% to 100%, for example ${option} 5%.` });
  return percent;
}
