import type { Command } from 'commander';
import { FlotillaError } from '../../core/errors.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { describeOutcome } from '../describe-outcome.js';
import { line, printJson, printTable } from '../output.js';

export function registerMigrateCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('status')
    .description('every tenant with its version, pending migrations and problems')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const problems = await withFlotilla(globals(), async (flotilla) => {
        const states = await flotilla.status();
        if (options.json) printJson(states);
        else if (states.length === 0) line('No tenants yet: create one with `flotilla tenant create <slug>`.');
        else
          printTable(
            ['tenant', 'kind', 'status', 'version', 'applied', 'pending', 'problems'],
            states.map((s) => [s.slug, s.kind, s.status, s.version, s.applied, s.pending, s.problems.map((p) => `${p.code}: ${p.message}`).join('\n') || null]),
          );
        return states.filter((s) => s.problems.length > 0).length;
      });
      if (problems > 0) process.exitCode = 1;
    });

  program
    .command('migrate')
    .description('apply pending migrations, each tenant all-or-nothing')
    .option('--tenant <slug>', 'a tenant to migrate (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
    .option('--all', 'every active tenant')
    .option('--dry-run', 'show what would run, change nothing')
    .option('--allow-out-of-order', 'apply pending migrations older than the newest applied one')
    .option('--json', 'print JSON')
    .action(async (options: { tenant?: string[]; all?: boolean; dryRun?: boolean; allowOutOfOrder?: boolean; json?: boolean }) => {
      if (!options.all === !options.tenant?.length) {
        throw new FlotillaError('FLO_USAGE', 'Say which tenants to migrate: --tenant <slug> (repeatable) or --all, not both.', {
          hint: 'For example `flotilla migrate --all` or `flotilla migrate --tenant acme --tenant globex`.',
        });
      }
      const report = await withFlotilla(globals(), (flotilla) =>
        flotilla.migrate({
          tenants: options.tenant,
          all: options.all,
          dryRun: options.dryRun,
          allowOutOfOrder: options.allowOutOfOrder,
          onTenant: options.json ? undefined : (outcome) => line(describeOutcome(outcome)),
        }),
      );
      if (options.json) {
        printJson({ ...report, outcomes: report.outcomes.map((o) => (o.status === 'failed' ? { ...o, error: o.error.toJSON() } : o)) });
      } else {
        line();
        printTable(['run', 'succeeded', 'failed', 'skipped'], [[report.runId, report.succeeded, report.failed, report.skipped]]);
      }
      if (report.failed > 0) process.exitCode = 6;
    });
}

