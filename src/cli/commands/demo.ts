import type { Command } from 'commander';
import { describeOutcome } from '../describe-outcome.js';
import { line, printJson, printTable } from '../output.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('try Flotilla: three tenants of a sample app, an upgrade that back-fills a column, rows checked before and after')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const { runDemo } = await import('../../demo/demo.js');
      const result = await runDemo({ events: options.json ? undefined : { step: (text) => line(`• ${text}`) } });
      if (options.json) return printJson(result);
      line();
      line('Upgrade:');
      for (const outcome of result.report.outcomes) line(describeOutcome(outcome));
      line();
      line('Status after the upgrade:');
      printTable(
        ['tenant', 'kind', 'status', 'version', 'applied', 'pending', 'problems'],
        result.status.map((s) => [s.slug, s.kind, s.status, s.version, s.applied, s.pending, s.problems.length || null]),
      );
      line('Rows before and after (every row kept, every row back-filled):');
      printTable(
        ['tenant', 'table', 'before', 'after', 'without client_id'],
        result.counts.map((c) => [c.tenant, c.table, c.before, c.after, c.missingClient]),
      );
      line(`${result.report.succeeded} tenants upgraded, each all-or-nothing; run ${result.report.runId}.`);
    });
}
