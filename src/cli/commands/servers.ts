import type { Command } from 'commander';
import { parseServerUrl, redactUrl } from '../../postgres/server-url.js';
import { parseFlag, serverName } from '../flags.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { line, printJson, printTable } from '../output.js';

export function registerServerCommands(program: Command, globals: () => GlobalOptions): void {
  const server = program.command('server').description('register the PostgreSQL servers tenants live on');
  server
    .command('add <name>')
    .description('register a server (its connection is checked first)')
    .requiredOption('--url <url>', 'a PostgreSQL URL: postgres://user@host:port/database, its password after the user (user:password@) or as ?password=; kept apart, never shown')
    .action(async (name: string, options: { url: string }) => {
      parseFlag('server name', name, serverName, 'eu-west');
      parseServerUrl(options.url);
      await withFlotilla(globals(), async (flotilla) => {
        const added = await flotilla.servers.add(name, options.url);
        line(`Registered server ${added.name} (${redactUrl(added.url)}).`);
      });
    });
  server
    .command('list')
    .description('list registered servers (passwords hidden)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withFlotilla(globals(), async (flotilla) => {
        const servers = (await flotilla.servers.list()).map((s) => ({ ...s, url: redactUrl(s.url) }));
        if (options.json) printJson(servers);
        else
          printTable(
            ['name', 'url', 'registered'],
            servers.map((s) => [s.name, s.url, s.createdAt]),
          );
      });
    });
}
