import type { Command } from 'commander';
import { Option } from 'commander';
import { TENANT_KINDS } from '../../core/tenant.js';
import type { Tenant, TenantKind } from '../../core/tenant.js';
import type { GlobalOptions } from '../context.js';
import { repeatable, withFlotilla } from '../context.js';
import { optionalFlag, parseFlag, serverName, tag, text } from '../flags.js';
import { assertSlug, assertSlugReference } from '../../core/slug.js';
import { line, printJson, printTable } from '../output.js';
import { registerDomainCommands } from './domains.js';
import { registerMaintenanceCommands } from './maintenance.js';

export function registerTenantCommands(program: Command, globals: () => GlobalOptions): void {
  const tenant = program.command('tenant').description('create and inspect tenants');
  tenant
    .command('create <slug>')
    .description('create the tenant database or schema, apply every migration, register it as active')
    .option('--name <name>', 'display name (default: the slug)')
    .addOption(new Option('--kind <kind>', 'where the tenant lives (default from config: database)').choices([...TENANT_KINDS]))
    .option('--server <server>', 'registered server to place it on', 'main')
    .option('--plan <plan>', 'commercial plan, stored in the registry')
    .option('--tag <tag>', 'a label rollouts can select by, `migrate --tag` (repeatable)', repeatable)
    .option('--json', 'print the tenant as JSON')
    .action(async (slug: string, options: { name?: string; kind?: TenantKind; server: string; plan?: string; tag?: string[]; json?: boolean }) => {
      assertSlug(slug);
      parseFlag('--server', options.server, serverName, 'eu-west');
      for (const value of options.tag ?? []) parseFlag('--tag', value, tag, 'beta');
      optionalFlag('--name', options.name, text, '"Acme Corp"');
      optionalFlag('--plan', options.plan, text, 'pro');
      await withFlotilla(globals(), async (flotilla) => {
        const created = await flotilla.tenants.create({ slug, name: options.name, kind: options.kind, server: options.server, plan: options.plan, tags: options.tag });
        if (options.json) printJson(created);
        else line(`Created tenant ${created.slug} (${created.kind}: database ${created.database}, schema ${created.schema}), status ${created.status}.`);
      });
    });
  tenant
    .command('list')
    .description('list registered tenants')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withFlotilla(globals(), async (flotilla) => {
        const tenants = await flotilla.tenants.list();
        if (options.json) return printJson(tenants);
        if (tenants.length === 0) return line('No tenants yet: create one with `flotilla tenant create <slug>`.');
        printTable(
          ['slug', 'name', 'kind', 'status', 'server', 'database', 'schema'],
          tenants.map((t) => [t.slug, t.name, t.kind, t.status, t.server, t.database, t.schema]),
        );
      });
    });
  tenant
    .command('show <slug>')
    .description('show one tenant')
    .option('--json', 'print JSON')
    .action(async (slug: string, options: { json?: boolean }) => {
      assertSlugReference(slug);
      await withFlotilla(globals(), async (flotilla) => {
        const found = await flotilla.tenants.get(slug);
        const storage = await flotilla.tenants.storage(slug);
        if (options.json) printJson({ ...found, storage });
        else showTenant(found, storage);
      });
    });
  registerMaintenanceCommands(tenant, globals);
  registerDomainCommands(tenant, globals);
}

function showTenant(t: Tenant, storage: readonly { kind: string; database: string; name: string }[]): void {
  printTable(
    ['field', 'value'],
    [
      ['slug', t.slug],
      ['name', t.name],
      ['kind', t.kind],
      ['status', t.status],
      ['server', t.server],
      ['database', t.database],
      ['schema', t.schema],
      ['plan', t.plan],
      ['tags', t.tags.join(', ') || null],
      ['domains', t.domains.map((d) => `${d.host}${d.primary ? ' (primary)' : ''}`).join(', ') || null],
      ['settings', JSON.stringify(t.settings)],
      ['owns', storage.map((s) => (s.kind === 'schema' ? `schema ${s.name} (in ${s.database})` : `${s.kind} ${s.name}`)).join('\n') || null],
      ['created', t.createdAt],
      ['updated', t.updatedAt],
    ],
  );
}
