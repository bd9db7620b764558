import type { Command } from 'commander';
import { assertSlugReference } from '../../core/slug.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { optionalFlag, text, wholeNumber } from '../flags.js';
import { FlotillaError } from '../../core/errors.js';
import { line, printJson, printTable } from '../output.js';

/** `tenant down|up|maintenance`: what running apps answer 503 for. */
export function registerMaintenanceCommands(tenant: Command, globals: () => GlobalOptions): void {
  tenant
    .command('down [slug]')
    .description('put a tenant (or, with --all, the whole fleet) under maintenance: running apps answer 503 with Retry-After within a second')
    .option('--all', 'the whole fleet, tenants created meanwhile included')
    .option('--message <text>', "what the tenant's users are told")
    .option('--retry-after <seconds>', 'the Retry-After the apps send, in seconds (default 60)')
    .option('--json', 'print JSON')
    .action(async (slug: string | undefined, options: { all?: boolean; message?: string; retryAfter?: string; json?: boolean }) => {
      const target = oneTarget(slug, options.all, 'down');
      const message = optionalFlag('--message', options.message, text, '"Back at 14:00"');
      const retryAfter = optionalFlag('--retry-after', options.retryAfter, wholeNumber(1, 86_400), '120');
      await withFlotilla(globals(), async (flotilla) => {
        if (target === ALL) await flotilla.maintenance.downAll({ message, retryAfter });
        else await flotilla.maintenance.down(target, { message, retryAfter });
        if (options.json) return printJson({ down: target === ALL ? 'all' : target, message: message ?? null, retryAfter: retryAfter ?? 60 });
        line(target === ALL ? 'The whole fleet is down for maintenance.' : `Tenant ${target} is down for maintenance.`);
        line(`Apps answer 503 with Retry-After: ${retryAfter ?? 60}; bring it back with \`flotilla tenant up ${target === ALL ? '--all' : target}\`.`);
      });
    });
  tenant
    .command('up [slug]')
    .description("bring a tenant back from maintenance (--all: the fleet's maintenance and every tenant's)")
    .option('--all', 'the whole fleet')
    .option('--json', 'print JSON')
    .action(async (slug: string | undefined, options: { all?: boolean; json?: boolean }) => {
      const target = oneTarget(slug, options.all, 'up');
      await withFlotilla(globals(), async (flotilla) => {
        if (target === ALL) await flotilla.maintenance.upAll();
        else await flotilla.maintenance.up(target);
        const state = await flotilla.maintenance.state();
        if (options.json) return printJson({ up: target === ALL ? 'all' : target, fleetDown: state.fleet !== null });
        line(target === ALL ? 'Every tenant is back up.' : `Tenant ${target} is back up.`);
        if (target !== 'all' && state.fleet) line('The whole fleet is still down for maintenance: `flotilla tenant up --all` lifts it.');
      });
    });
  tenant
    .command('maintenance')
    .description('show what is under maintenance')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withFlotilla(globals(), async (flotilla) => {
        const state = await flotilla.maintenance.state();
        if (options.json) return printJson(state);
        if (!state.fleet && state.tenants.length === 0) return line('Nothing is under maintenance.');
        const rows = [
          ...(state.fleet ? [['(whole fleet)', state.fleet.since, state.fleet.retryAfter, state.fleet.message]] : []),
          ...state.tenants.map((t) => [t.slug, t.maintenance.since, t.maintenance.retryAfter, t.maintenance.message]),
        ];
        printTable(['tenant', 'since', 'retry after (s)', 'message'], rows);
      });
    });
}

/** The whole fleet: a symbol, so that no tenant's slug (a tenant may be called "all") can mean it. */
const ALL = Symbol('the whole fleet');

function oneTarget(slug: string | undefined, all: boolean | undefined, verb: string): string | typeof ALL {
  if (all && slug) throw new FlotillaError('FLO_USAGE', `Give a tenant or --all, not both.`, { hint: `flotilla tenant ${verb} <slug>, or flotilla tenant ${verb} --all.` });
  if (all) return ALL;
  if (!slug) throw new FlotillaError('FLO_USAGE', 'Say which tenant, or --all for the whole fleet.', { hint: `flotilla tenant ${verb} <slug>, or flotilla tenant ${verb} --all.` });
  assertSlugReference(slug);
  return slug;
}
