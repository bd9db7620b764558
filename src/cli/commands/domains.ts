import type { Command } from 'commander';
import { assertHostName } from '../../core/host.js';
import { assertSlugReference } from '../../core/slug.js';
import type { GlobalOptions } from '../context.js';
import { withFlotilla } from '../context.js';
import { line, printJson, printTable } from '../output.js';

/** `tenant domain add|remove|list`: custom domains that name a tenant to running apps. */
export function registerDomainCommands(tenant: Command, globals: () => GlobalOptions): void {
  const domain = tenant.command('domain').description("a tenant's custom domains (app.acme.com → acme)");
  domain
    .command('add <slug> <host>')
    .description('add a domain to a tenant: running apps route it to the tenant within a second')
    .option('--primary', "make it the tenant's primary domain")
    .action(async (slug: string, host: string, options: { primary?: boolean }) => {
      assertSlugReference(slug);
      assertHostName(host);
      await withFlotilla(globals(), async (flotilla) => {
        await flotilla.domains.add(slug, host, { primary: options.primary });
        line(`Domain ${host} now names tenant ${slug}${options.primary ? ' (primary)' : ''}.`);
      });
    });
  domain
    .command('remove <slug> <host>')
    .description('remove a domain from a tenant')
    .action(async (slug: string, host: string) => {
      assertSlugReference(slug);
      assertHostName(host);
      await withFlotilla(globals(), async (flotilla) => {
        const removed = await flotilla.domains.remove(slug, host);
        line(removed ? `Domain ${host} removed from tenant ${slug}.` : `Tenant ${slug} has no domain ${host}: nothing to remove.`);
      });
    });
  domain
    .command('list [slug]')
    .description("list every tenant's domains, or one tenant's")
    .option('--json', 'print JSON')
    .action(async (slug: string | undefined, options: { json?: boolean }) => {
      if (slug !== undefined) assertSlugReference(slug);
      await withFlotilla(globals(), async (flotilla) => {
        const domains = await flotilla.domains.list(slug);
        if (options.json) return printJson(domains);
        if (domains.length === 0) return line('No custom domains.');
        printTable(
          ['host', 'tenant', 'primary'],
          domains.map((d) => [d.host, d.tenant, d.primary ? 'yes' : '']),
        );
      });
    });
}
