import type { Command } from 'commander';
import { FlotillaError } from '../../core/errors.js';
import type { DemoResult } from '../../demo/demo.js';
import { describeOutcome } from '../describe-outcome.js';
import { optionalFlag, wholeNumber } from '../flags.js';
import { line, printJson, printTable } from '../output.js';

interface DemoFlags {
  json?: boolean;
  serve?: boolean;
  port?: string;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('try Flotilla: three tenants of a sample app, an upgrade that back-fills a column, rows checked before and after')
    .option('--json', 'print the result as JSON')
    .option('--serve', 'then serve the sample loans app to the three tenants on 127.0.0.1, until Ctrl-C')
    .option('--port <port>', 'the port for --serve (default 3000; 0 picks a free one)')
    .action(async (options: DemoFlags) => {
      const port = optionalFlag('--port', options.port, wholeNumber(0, 65_535), '8080');
      if (port !== undefined && !options.serve) throw new FlotillaError('FLO_USAGE', '--port is for --serve.', { hint: 'Run flotilla demo --serve --port <port>.' });
      if (options.serve && options.json)
        throw new FlotillaError('FLO_USAGE', '--json and --serve do not go together.', { hint: 'Run flotilla demo --json, or flotilla demo --serve.' });
      if (options.serve) return serve(port);
      const { runDemo } = await import('../../demo/demo.js');
      const result = await runDemo({ events: options.json ? undefined : { step: (text) => line(`• ${text}`) } });
      if (options.json) return printJson(result);
      printResult(result);
    });
}

/** The demo, then the sample app served until SIGINT or SIGTERM, then everything closed in order. */
async function serve(port: number | undefined): Promise<void> {
  const { serveDemo, shutdownSignal } = await import('../../demo/serve.js');
  const serving = await serveDemo({ port, events: { step: (text) => line(`• ${text}`) } });
  try {
    printResult(serving.result);
    // Listening before the line below: whoever waits for it may stop the demo at once.
    const signal = shutdownSignal();
    line();
    line(`Serving the loans app on http://127.0.0.1:${serving.port} (Ctrl-C to stop). Each tenant's summary:`);
    line(`  ${serving.urls.subdomain}`);
    line(`  curl -H 'X-Tenant-ID: lyon' ${serving.urls.header}`);
    line(`  ${serving.urls.query}`);
    line(`${await signal}: stopping.`);
  } finally {
    await serving.close();
  }
}

function printResult(result: DemoResult): void {
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
}
