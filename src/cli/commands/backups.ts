import type { Command } from 'commander';
import { Option } from 'commander';
import type { Backup } from '../../control/backup-catalog.js';
import { formatBytes } from '../../core/bytes.js';
import { totalRows } from '../../postgres/row-counts.js';
import { FlotillaError } from '../../core/errors.js';
import { assertSlug, assertSlugReference } from '../../core/slug.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { idPrefix, optionalFlag, parseFlag, wholeNumber } from '../flags.js';
import { line, printJson, printTable } from '../output.js';

export function registerBackupCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('backup')
    .usage('<slug> [--strategy dump|snapshot] [--keep N] | list [<slug>] | prune <slug> --keep N')
    .description('back a tenant up now (`backup <slug>`), list backups (`backup list [<slug>]`), or remove all but the newest N (`backup prune <slug> --keep N`)')
    .argument('<slug-or-list>', 'a tenant slug, "list" or "prune"')
    .argument('[slug]', 'with list: only this tenant; with prune: the tenant')
    .addOption(new Option('--strategy <strategy>', 'dump (pg_dump) or snapshot (CREATE DATABASE … TEMPLATE, database tenants)').choices(['dump', 'snapshot']))
    .option('--keep <n>', 'afterwards keep only the newest N backups of the tenant')
    .option('--json', 'print JSON')
    .action(async (first: string, second: string | undefined, options: { strategy?: 'dump' | 'snapshot'; keep?: string; json?: boolean }) => {
      // Everything checked before anything opens.
      const action = first === 'list' || first === 'prune' ? first : 'backup';
      if (action === 'backup' && second !== undefined)
        throw new FlotillaError('FLO_USAGE', `Unexpected argument ${second}.`, {
          hint: 'Use `flotilla backup <slug>`, `flotilla backup list [<slug>]` or `flotilla backup prune <slug> --keep N`.',
        });
      if (action === 'prune' && (second === undefined || options.keep === undefined))
        throw new FlotillaError('FLO_USAGE', 'Say which tenant and how many backups to keep.', { hint: 'For example `flotilla backup prune acme --keep 5`.' });
      const slug = action === 'backup' ? first : second;
      if (slug !== undefined) assertSlugReference(slug);
      const keep = optionalFlag('--keep', options.keep, wholeNumber(action === 'prune' ? 0 : 1, 100_000), '5');
      await withFlotilla(globals(), async (flotilla) => {
        if (action === 'list') {
          const backups = await flotilla.backups.list(slug);
          if (options.json) return printJson(backups);
          if (backups.length === 0) return line('No backups.');
          printTable(['id', 'tenant', 'strategy', 'version', 'size', 'rows', 'reason', 'taken'], backups.map(backupRow));
          return;
        }
        if (action === 'prune') {
          const removed = await flotilla.backups.prune(slug!, keep!);
          if (options.json) return printJson(removed);
          return line(`Removed ${removed.length} backup${removed.length === 1 ? '' : 's'} of ${slug}.`);
        }
        const backup = await flotilla.backups.create(slug!, { strategy: options.strategy, keep });
        if (options.json) return printJson(backup);
        line(
          `Backup ${backup.id} of ${backup.tenant}: ${backup.strategy}, ${formatBytes(backup.sizeBytes)}, ${totalRows(backup.rowCounts)} rows in ${Object.keys(backup.rowCounts).length} tables, at version ${backup.schemaVersion ?? '-'}.`,
        );
        line(`  ${backup.location}`);
      });
    });

  program
    .command('restore <slug>')
    .description('restore a backup into its tenant (offline meanwhile) or into a new tenant; the row counts must match the backup')
    .requiredOption('--backup <id>', 'backup id (or its first 8 characters) from `flotilla backup list`')
    .option('--as <new-slug>', 'restore into a new tenant instead')
    .option('--json', 'print JSON')
    .action(async (slug: string, options: { backup: string; as?: string; json?: boolean }) => {
      parseFlag('--backup', options.backup, idPrefix, '3f2a9c1d');
      assertSlugReference(slug);
      if (options.as !== undefined) assertSlug(options.as);
      await withFlotilla(globals(), async (flotilla) => {
        const result = await flotilla.backups.restore(slug, options.backup, { as: options.as });
        if (options.json) return printJson(result);
        line(
          `Restored backup ${result.backup.id.slice(0, 8)} into tenant ${result.tenant.slug} (version ${result.backup.schemaVersion ?? '-'}): ${totalRows(result.backup.rowCounts)} rows in ${Object.keys(result.backup.rowCounts).length} tables, counts checked.`,
        );
      });
    });
}

function backupRow(b: Backup): (string | number | null)[] {
  return [
    b.id.slice(0, 8),
    b.tenant,
    b.strategy,
    b.schemaVersion,
    formatBytes(b.sizeBytes),
    totalRows(b.rowCounts),
    b.reason.length > 40 ? `${b.reason.slice(0, 37)}...` : b.reason,
    b.createdAt,
  ];
}
