import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { idPrefix, parseFlag } from '../flags.js';
import { line, printJson, printTable } from '../output.js';

export function registerRolloutCommands(program: Command, globals: () => GlobalOptions): void {
  const rollout = program.command('rollout').description('inspect and cancel fleet rollouts');
  rollout
    .command('list')
    .description('recent rollouts')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withFlotilla(globals(), async (flotilla) => {
        const rollouts = await flotilla.rollouts.list();
        if (options.json) return printJson(rollouts);
        if (rollouts.length === 0) return line('No rollouts yet.');
        printTable(
          ['id', 'status', 'started', 'by', 'tenants', 'succeeded', 'failed', 'skipped', 'left'],
          rollouts.map((r) => [
            r.id,
            r.status,
            r.createdAt,
            r.startedBy,
            r.counts.total,
            r.counts.succeeded,
            r.counts.failed,
            r.counts.skipped,
            r.counts.pending + r.counts.running,
          ]),
        );
      });
    });
  rollout
    .command('show <id>')
    .description('one rollout with every tenant')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      parseFlag('rollout id', id, idPrefix, '3f2a9c1d');
      await withFlotilla(globals(), async (flotilla) => {
        const found = await flotilla.rollouts.get(id);
        const tenants = await flotilla.rollouts.tenants(found.id);
        if (options.json) return printJson({ ...found, tenants });
        line(
          `Rollout ${found.id}: ${found.status}${found.haltReason ? ` (${found.haltReason})` : ''}, started ${found.createdAt} by ${found.startedBy}, target ${found.target ?? 'newest'}.`,
        );
        printTable(
          ['tenant', 'server', 'wave', 'state', 'attempts', 'from', 'to', 'error'],
          tenants.map((t) => [
            t.tenant,
            t.server,
            t.wave === 0 ? 'canary' : t.wave,
            t.state,
            t.attempts,
            t.versionBefore,
            t.versionAfter,
            t.errorCode ? `${t.errorCode}: ${t.errorMessage?.split('\n')[0]}` : null,
          ]),
        );
      });
    });
  rollout
    .command('cancel <id>')
    .description('stop a rollout: no new tenant starts, running ones finish')
    .action(async (id: string) => {
      parseFlag('rollout id', id, idPrefix, '3f2a9c1d');
      await withFlotilla(globals(), async (flotilla) => {
        const cancelled = await flotilla.rollouts.cancel(id);
        line(`Rollout ${cancelled.id} is ${cancelled.status}.`);
      });
    });
}
