import type { Command } from 'commander';
import { assertSlugReference } from '../../core/slug.js';
import { instant, optionalFlag, parseFlag, wholeNumber } from '../flags.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { line, printJson, printTable } from '../output.js';

export function registerAuditCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('audit')
    .description('the append-only record of every tenant create, migrate, backup and restore')
    .option('--tenant <slug>', 'only this tenant')
    .option('--since <when>', 'only since then: an ISO date or a duration such as 2h, 3d')
    .option('--limit <n>', 'at most this many events (newest)', '1000')
    .option('--json', 'print JSON')
    .action(async (options: { tenant?: string; since?: string; limit: string; json?: boolean }) => {
      const since = optionalFlag('--since', options.since, instant(), '2h');
      const limit = parseFlag('--limit', options.limit, wholeNumber(1, 100_000), '500');
      if (options.tenant !== undefined) assertSlugReference(options.tenant);
      await withFlotilla(globals(), async (flotilla) => {
        const events = await flotilla.audit.list({ tenant: options.tenant, since, limit });
        if (options.json) return printJson(events);
        if (events.length === 0) return line('No events.');
        printTable(
          ['at', 'who', 'command', 'tenant', 'version', 'outcome', 'ms', 'backup', 'error'],
          events.map((e) => [
            e.at,
            e.actor,
            e.command,
            e.tenant,
            e.versionBefore === e.versionAfter ? e.versionAfter : `${e.versionBefore ?? '-'} → ${e.versionAfter ?? '-'}`,
            e.outcome,
            e.durationMs,
            e.backupId?.slice(0, 8) ?? null,
            e.errorCode ? `${e.errorCode}: ${e.errorMessage?.split('\n')[0]}` : null,
          ]),
        );
      });
    });
}
