import { FlotillaError } from '../core/errors.js';
import type { Server } from '../core/tenant.js';
import { MAIN_SERVER, SERVER_NAME_PATTERN } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { adminDatabase, parseServerUrl, redactUrl, splitPassword } from '../postgres/server-url.js';
import type { ServiceContext } from './context.js';

/** The PostgreSQL servers tenants can be placed on. URLs leave it without their passwords. */
export class ServerService {
  constructor(private readonly ctx: ServiceContext) {}

  /**
   * Registers a server tenants can be placed on, once its connection works. Its
   * password is kept apart from its URL and never shown. Registering the same
   * name and URL again is accepted as done.
   */
  async add(name: string, url: string): Promise<Server> {
    if (!SERVER_NAME_PATTERN.test(name)) {
      throw new FlotillaError('FLO_USAGE', `Invalid server name ${JSON.stringify(name)}.`, {
        hint: 'Use a lowercase letter first, then lowercase letters, digits or "-" (for example "eu-west-2").',
        meta: { server: name },
      });
    }
    parseServerUrl(url);
    const { registry, operations } = this.ctx;
    // Recorded without the password: the audit trail never holds one.
    return operations.run({ command: 'server add', arguments: { name, url: redactUrl(splitPassword(url).url) } }, async () => {
      const existing = (await registry.listServers()).find((s) => s.name === name);
      // Run again after it was killed: done already (the same URL and password; anything else is another server).
      const same = (a: string, b: string) => JSON.stringify(splitPassword(a)) === JSON.stringify(splitPassword(b));
      if (existing && name !== MAIN_SERVER && same(existing.url, url)) return { result: publicServer(existing) };
      await withClient(url, adminDatabase(url), async () => undefined);
      return { result: publicServer(await registry.addServer(name, url)) };
    });
  }

  /** The registered servers; their URLs without passwords. */
  async list(): Promise<Server[]> {
    return (await this.ctx.registry.listServers()).map(publicServer);
  }
}

/** A server as the API shows it: its URL without a password (any other secret parameter, sslpassword, masked too). */
export function publicServer(server: Server): Server {
  return { ...server, url: redactUrl(splitPassword(server.url).url) };
}
