import { FlotillaError, isFlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { EngineOptions, TargetResult } from '../engine/migrate-target.js';
import { migrateTarget } from '../engine/migrate-target.js';
import { withClient } from '../postgres/connect.js';
import { isFlotillaStorage } from '../postgres/provision.js';
import type { Registry } from '../control/registry.js';
import type { Server, Tenant, TenantKind } from '../core/tenant.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import type { FlotillaConfig } from '../config/config.js';
import { tenancyModel } from '../tenancy/models.js';

export interface NewTenant {
  readonly slug: string;
  readonly name?: string;
  readonly kind: TenantKind;
  readonly server: Server;
  readonly plan?: string;
  readonly settings?: Record<string, unknown>;
  readonly tags?: readonly string[];
}

export interface ProvisioningDeps {
  readonly registry: Registry;
  readonly storage: OwnedStorage;
  readonly tenantsConfig: FlotillaConfig['tenants'];
  readonly engine: EngineOptions;
}

/**
 * Registers a tenant as `provisioning` (owned by the operation making it),
 * makes its storage under claims, applies every migration, and activates it.
 * On failure everything it made is removed and the tenant is not registered;
 * killed midway, the next command removes it the same way (see recovery.ts).
 */
export async function provisionTenant(
  input: NewTenant,
  set: MigrationSet,
  op: { id: string; assertAlive(): void },
  deps: ProvisioningDeps,
): Promise<{ tenant: Tenant; result: TargetResult | null; cleared: boolean }> {
  const operationId = op.id;
  const { registry, storage } = deps;
  const model = tenancyModel(input.kind);
  const place = model.place(input.slug, deps.tenantsConfig);
  const cleared = await clearLegacyLeftover(input.slug, set, deps);
  let tenant: Tenant;
  try {
    tenant = await insertOrExplain(input, place, operationId, registry);
  } catch (error) {
    if (!(error instanceof AlreadyDone)) throw error;
    return { tenant: error.tenant, result: null, cleared: false };
  }
  try {
    await model.provision(tenant, input.server, set, storage);
    op.assertAlive();
    const result = await migrateTarget(model.target(tenant, input.server, set), set, deps.engine);
    op.assertAlive();
    if (input.tags?.length) await registry.setTags(tenant.slug, input.tags);
    await registry.activate(tenant.slug);
    return { tenant: await registry.getTenant(tenant.slug), result, cleared };
  } catch (error) {
    // Only a tenant still being made is undone: one activated before the error stays as it is. When even
    // that cannot be read, the operation's recovery (which runs when the command fails) decides.
    if (await registry.stillProvisioning(tenant).catch(() => false)) {
      await model.remove(tenant, storage).catch(() => undefined);
      await registry.deleteUnfinishedTenant(tenant).catch(() => undefined);
    }
    const cause = isFlotillaError(error) ? error : undefined;
    // A refusal (storage that is not Flotilla's, a name taken) is not a failure: it is said as it is.
    if (cause && (cause.code === 'FLO_STORAGE_TAKEN' || cause.code === 'FLO_SLUG_INVALID')) throw cause;
    throw new FlotillaError(
      'FLO_PROVISION_FAILED',
      `Tenant ${tenant.slug} was not created: ${(cause?.message ?? (error as Error).message).replace(/\.$/, '')}. What it made was removed and it is not registered.`,
      { hint: cause?.hint ?? 'Fix the cause above and run the command again.', meta: { tenant: tenant.slug, cause: cause?.code ?? null, ...(cause?.meta ?? {}) }, cause: error },
    );
  }
}

/** Inserts the tenant row; a slug being made by a live command right now is refused as locked. */
async function insertOrExplain(input: NewTenant, place: { database: string; schema: string }, operationId: string, registry: Registry): Promise<Tenant> {
  try {
    return await registry.insertTenant({
      slug: input.slug,
      name: input.name ?? input.slug,
      kind: input.kind,
      server: input.server.name,
      ...place,
      plan: input.plan,
      settings: input.settings,
      operationId,
    });
  } catch (error) {
    const existing = isFlotillaError(error) && error.code === 'FLO_TENANT_EXISTS' ? await registry.findTenant(input.slug) : undefined;
    if (existing && (await finishedBefore(registry, 'tenant create', existing, (args) => args.kind === input.kind && (args.server ?? 'main') === input.server.name)))
      throw new AlreadyDone(existing);
    if (existing?.status === 'provisioning') {
      throw new FlotillaError('FLO_TENANT_LOCKED', `Tenant ${input.slug} is being created by another process right now.`, {
        hint: 'Wait for that command to finish, then see the tenant with `flotilla tenant show <slug>`.',
        meta: { tenant: input.slug },
      });
    }
    throw error;
  }
}

/**
 * The same command was killed after it had done its work (before its end was
 * recorded): running it again finds the tenant made, and reports it done.
 */
export async function finishedBefore(registry: Registry, command: string, tenant: Tenant, sameArguments: (args: Record<string, unknown>) => boolean): Promise<boolean> {
  if (tenant.status !== 'active') return false;
  const last = await registry.operations.lastEnded(command, tenant.slug);
  return last?.outcome === 'interrupted' && sameArguments(last.arguments);
}

/** Thrown inside provisioning when the tenant was already made by an interrupted run of the same command. */
export class AlreadyDone extends Error {
  constructor(readonly tenant: Tenant) {
    super(`Tenant ${tenant.slug} was already made by an earlier run of this command.`);
  }
}

/**
 * A tenant left `provisioning` by a version of Flotilla that did not record
 * operations (nobody will ever finish it): what it made is removed if it holds
 * nothing but what Flotilla puts there, then the tenant row. True when there was one.
 */
async function clearLegacyLeftover(slug: string, set: MigrationSet, deps: ProvisioningDeps): Promise<boolean> {
  const { registry, storage } = deps;
  const leftover = await registry.findTenant(slug);
  if (leftover?.status !== 'provisioning' || (await registry.provisioningOperation(slug)) !== null) return false;
  // Older versions held this lock for the whole of a create: one of them may be making it right now.
  if (!(await registry.legacyCreateFree(slug))) {
    throw new FlotillaError('FLO_TENANT_LOCKED', `Tenant ${slug} is being created by another process right now.`, {
      hint: 'Wait for that command to finish, then see the tenant with `flotilla tenant show <slug>`.',
      meta: { tenant: slug },
    });
  }
  const server = await registry.getServer(leftover.server);
  const ours = await withClient(server.url, leftover.database, (client) => isFlotillaStorage(client, leftover.schema)).catch((error: FlotillaError) => {
    if ((error.cause as { code?: string } | undefined)?.code === '3D000') return true;
    throw error;
  });
  if (ours) {
    const model = tenancyModel(leftover.kind);
    await model.prepareUpgrade(leftover, server, set, storage, { known: {}, checkOnly: false }).catch(() => undefined);
    await model.remove(leftover, storage);
  } else {
    // Its storage holds data Flotilla did not put there: left as it is, and no longer claimed (the create
    // that follows then refuses it as someone else's).
    await storage.claims.release((await storage.claims.ofTenant(leftover.id)).map((c) => c.id));
  }
  await registry.deleteUnfinishedTenant(leftover);
  return true;
}
