import type { Maintenance } from '../control/runtime-directory.js';
import { FlotillaError } from '../core/errors.js';
import { assertSlugReference } from '../core/slug.js';
import type { ServiceContext } from './context.js';

export interface DownOptions {
  /** What the tenant's users are told (default: a sentence naming the retry delay). */
  readonly message?: string;
  /** The Retry-After the apps answer with, in seconds (default 60). */
  readonly retryAfter?: number;
}

export interface MaintenanceState {
  readonly fleet: Maintenance | null;
  readonly tenants: readonly { slug: string; maintenance: Maintenance }[];
}

/**
 * Maintenance as running apps see it (`php artisan down` for one tenant or the
 * fleet): their runtimes answer 503 with Retry-After for a tenant down, within
 * a second, while every other tenant keeps answering.
 */
export class MaintenanceService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Takes the whole fleet down, tenants created meanwhile included. */
  async downAll(options: DownOptions = {}): Promise<void> {
    const input = { message: options.message ?? null, retryAfter: checkRetryAfter(options.retryAfter ?? 60) };
    const { registry, operations } = this.ctx;
    await operations.run({ command: 'tenant down', arguments: { all: true, ...input } }, async () => {
      await registry.runtime.fleetDown(input);
      return { result: undefined };
    });
  }

  /** Takes one tenant down. */
  async down(target: string, options: DownOptions = {}): Promise<string[]> {
    const input = { message: options.message ?? null, retryAfter: checkRetryAfter(options.retryAfter ?? 60) };
    const { registry, operations } = this.ctx;
    assertSlugReference(target);
    return operations.run({ command: 'tenant down', tenant: target, arguments: input }, async () => {
      await registry.getTenant(target);
      return { result: await registry.runtime.tenantsDown([target], input) };
    });
  }

  /** Lifts the fleet's maintenance and every tenant's own. */
  async upAll(): Promise<void> {
    const { registry, operations } = this.ctx;
    await operations.run({ command: 'tenant up', arguments: { all: true } }, async () => {
      await registry.runtime.fleetUp();
      await registry.runtime.tenantsUp('all');
      return { result: undefined };
    });
  }

  /** Brings one tenant back up (the fleet's maintenance, if any, still holds it). */
  async up(target: string): Promise<string[]> {
    const { registry, operations } = this.ctx;
    assertSlugReference(target);
    return operations.run({ command: 'tenant up', tenant: target, arguments: {} }, async () => {
      await registry.getTenant(target);
      return { result: await registry.runtime.tenantsUp([target]) };
    });
  }

  async state(): Promise<MaintenanceState> {
    const { runtime } = this.ctx.registry;
    return { fleet: await runtime.fleetMaintenance(), tenants: await runtime.tenantsInMaintenance() };
  }
}

function checkRetryAfter(seconds: number): number {
  if (Number.isInteger(seconds) && seconds >= 1 && seconds <= 86_400) return seconds;
  throw new FlotillaError('FLO_USAGE', `retryAfter must be a whole number of seconds from 1 to 86400, not ${seconds}.`, { hint: 'Give retryAfter in seconds, 60 for a minute.' });
}
