import type { DomainRow } from '../control/runtime-settings.js';
import { assertHostName } from '../core/host.js';
import { assertSlugReference } from '../core/slug.js';
import type { ServiceContext } from './context.js';

/** Custom domains: a host that names its tenant to the runtime (`app.acme.com` → acme). */
export class DomainService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Adds a domain to a tenant; refused when another tenant has it. `primary` makes it the tenant's main one. */
  add(slug: string, host: string, options: { primary?: boolean } = {}): Promise<DomainRow> {
    assertSlugReference(slug);
    assertHostName(host);
    return this.ctx.operations.run({ command: 'tenant domain add', tenant: slug, arguments: { host, primary: options.primary === true } }, async () => ({
      result: await this.ctx.registry.runtime.addDomain(slug, host, options.primary === true),
    }));
  }

  /** Removes a tenant's domain; false when it had no such domain. */
  remove(slug: string, host: string): Promise<boolean> {
    assertSlugReference(slug);
    assertHostName(host);
    return this.ctx.operations.run({ command: 'tenant domain remove', tenant: slug, arguments: { host } }, async () => ({
      result: await this.ctx.registry.runtime.removeDomain(slug, host),
    }));
  }

  /** Every domain, or one tenant's. */
  async list(slug?: string): Promise<DomainRow[]> {
    if (slug !== undefined) {
      assertSlugReference(slug);
      await this.ctx.registry.getTenant(slug);
    }
    return this.ctx.registry.runtime.domains(slug);
  }
}
