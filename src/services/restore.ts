import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlotillaConfig } from '../config/config.js';
import { FlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import { assertSlug } from '../core/slug.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import type { OperationContext } from './operations.js';
import { withClient } from '../postgres/connect.js';
import { requireTool, runTool, serverMajor } from '../postgres/pg-tools.js';
import { databaseExists, endSessions, existingSchemas, renameSchema } from '../postgres/provision.js';
import { adminDatabase, withDatabase } from '../postgres/server-url.js';
import type { Registry } from '../control/registry.js';
import type { StorageClaim } from '../control/storage.js';
import type { Server, Tenant } from '../core/tenant.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import { localFile } from '../tenancy/owned-storage.js';
import { finishSwap, undoSwap } from '../tenancy/swap.js';
import { claimTenantSchemas, removeTenantStorage } from '../tenancy/tenant-storage.js';
import { placeTenant } from '../tenancy/placement.js';
import { finishedBefore } from './provisioning.js';
import { fileChecksum } from './backup-service.js';
import type { Backup } from '../control/backup-catalog.js';
import type { RowCounts } from '../postgres/row-counts.js';
import { countDifferences, countRows } from '../postgres/row-counts.js';

export interface RestoreDeps {
  readonly registry: Registry;
  readonly storage: OwnedStorage;
  readonly config: FlotillaConfig;
}

/**
 * Restores a backup into its tenant (offline meanwhile) or, with `as`, into a
 * new tenant. The copy is made aside and its row counts must equal the backup's
 * before it replaces anything; only storage the registry records as the
 * tenant's is replaced, and what it held is kept aside until the copy is in place.
 */
export async function restoreBackup(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backupId: string; slug: string; as?: string },
): Promise<{ backup: Backup; tenant: Tenant }> {
  const { registry } = deps;
  const backup = await registry.backups.get(input.backupId);
  if (backup.tenant !== input.slug) {
    throw new FlotillaError('FLO_BACKUP_NOT_FOUND', `Backup ${backup.id.slice(0, 8)} belongs to tenant ${backup.tenant}, not ${input.slug}.`, {
      hint: `Run \`flotilla backup list ${input.slug}\` for its backups, or restore it with --as <new-slug> to make a new tenant from it.`,
      meta: { backup: backup.id, tenant: input.slug },
    });
  }
  if (input.as !== undefined) assertSlug(input.as);
  const server = await registry.getServer(backup.server);
  await verifyBackupIntact(backup, server);
  const schemas = backup.kind === 'schema' ? await backupSchemas(backup) : [];
  if (input.as !== undefined) {
    // Run again after it was killed once its work was done: the copy is there, and that is the result.
    const existing = await registry.findTenant(input.as);
    if (existing && (await finishedBefore(registry, 'restore', existing, (args) => args.backup === input.backupId && args.slug === input.slug)))
      return { backup, tenant: existing };
    return { backup, tenant: await restoreAsNew(deps, op, set, { backup, server, schemas, slug: input.as }) };
  }
  const tenant = await registry.getTenant(input.slug);
  // Never under a command that is making, upgrading or restoring it (those that died were cleared before this one).
  // A tenant left `restoring` by an older Flotilla that recorded no operations is restored all the same.
  const leftRestoring = tenant.status === 'restoring' && !(await registry.operations.othersOn(tenant.slug, op.id));
  if (leftRestoring) await registry.setStatus(tenant.slug, 'active');
  // Checked and set in one step: a rollout that claims the tenant meanwhile is seen, not overwritten.
  const { previous, changed } = await op.setTenantStatus(tenant.slug, 'restoring', ['provisioning', 'upgrading', 'restoring']);
  if (!changed) {
    throw new FlotillaError('FLO_TENANT_LOCKED', `Tenant ${tenant.slug} is ${previous} by another command right now: it cannot be restored meanwhile.`, {
      hint: 'Wait for that command to finish (see `flotilla rollout list` and `flotilla audit --tenant <slug>`), then run the restore again.',
      meta: { tenant: tenant.slug, status: previous },
    });
  }
  try {
    if (tenant.kind === 'database') await replaceDatabase(deps, op, backup, tenant, server);
    else await replaceSchemas(deps, op, { backup, tenant, server, schemas, set });
  } finally {
    await registry.setStatus(tenant.slug, previous);
  }
  return { backup, tenant: await registry.getTenant(tenant.slug) };
}

/** Database tenant: the copy is made in a scratch database, checked, then takes the tenant database's name. */
async function replaceDatabase(deps: RestoreDeps, op: OperationContext, backup: Backup, tenant: Tenant, server: Server): Promise<void> {
  const { storage } = deps;
  const own = await storage.requireTenants({ server: server.name, kind: 'database', name: tenant.database }, tenant);
  const suffix = op.id.replaceAll('-', '');
  const scratch = await materialize(deps, backup, server, `flotilla_restore_${suffix}`, { purpose: 'scratch', operationId: op.id });
  const aside = await storage.claimAbsent(
    { server: server.name, kind: 'database', name: `flotilla_old_${suffix}` },
    { purpose: 'aside', operationId: op.id, tenantId: tenant.id, asideOf: own.name },
  );
  op.assertAlive();
  try {
    await withClient(server.url, adminDatabase(server.url), (admin) => endSessions(admin, tenant.database));
    await storage.renameObject(own, aside.name);
  } catch (cause) {
    // Someone reconnected in between: nothing moved.
    await storage.claims.release([aside.id]);
    await storage.drop(scratch);
    throw new FlotillaError('FLO_RESTORE_FAILED', `Could not swap the restored copy in: ${(cause as Error).message}`, {
      hint: 'Sessions keep reconnecting to the tenant database: stop the application for this tenant and run the restore again. Nothing was replaced.',
      meta: { backup: backup.id, tenant: tenant.slug },
      cause,
    });
  }
  try {
    await op.setPhase('moved');
    await storage.renameObject(scratch, own.name);
  } catch (error) {
    await undoSwap(storage, [aside]);
    await storage.drop(scratch);
    throw error;
  }
  await storage.claims.release([scratch.id]);
  await op.setPhase('verified');
  await finishSwap(storage, [aside]);
}

/**
 * Schema tenant: its schemas are moved aside in one transaction, the dump is
 * restored under their names, counted, and only then are the old ones dropped;
 * on any failure the restored ones go and the old ones come back.
 */
async function replaceSchemas(
  deps: RestoreDeps,
  op: OperationContext,
  input: { backup: Backup; tenant: Tenant; server: Server; schemas: readonly string[]; set: MigrationSet | undefined },
): Promise<void> {
  const { storage } = deps;
  const { backup, tenant, server } = input;
  // Schemas its own migrations made before ownership was recorded become its own first (by its history).
  if (input.set) await claimTenantSchemas(tenant, server, input.set, storage);
  // Every schema the dump holds, and every schema the tenant has now, must be the tenant's own.
  const owned = (await storage.claims.ofTenant(tenant.id)).filter((c) => c.kind === 'schema').map((c) => c.name);
  for (const name of input.schemas) await storage.requireTenants({ server: server.name, kind: 'schema', database: tenant.database, name }, tenant);
  const names = [...new Set([...owned, ...input.schemas])];
  const suffix = op.id.replaceAll('-', '').slice(0, 24);
  const asides: StorageClaim[] = [];
  for (const [i, name] of names.entries()) {
    asides.push(
      await storage.claimAbsent(
        { server: server.name, kind: 'schema', database: tenant.database, name: `flotilla_old_${suffix}_${i}` },
        { purpose: 'aside', operationId: op.id, tenantId: tenant.id, asideOf: name },
      ),
    );
  }
  op.assertAlive();
  await withClient(server.url, tenant.database, async (client) => {
    const present = new Set(await existingSchemas(client, names));
    await client.query('BEGIN');
    for (const aside of asides) if (present.has(aside.asideOf!)) await renameSchema(client, aside.asideOf!, aside.name);
    await client.query('COMMIT');
  });
  try {
    await op.setPhase('moved');
    await pgRestore(backup, server, tenant.database);
    const counts = await withClient(server.url, tenant.database, async (client) =>
      countRows(client, { schemas: await existingSchemas(client, input.schemas), tenantSchema: tenant.schema }),
    );
    checkCounts(backup, counts);
  } catch (error) {
    await undoSwap(storage, asides);
    throw error;
  }
  await op.setPhase('verified');
  await finishSwap(storage, asides);
}

/** A new tenant from a backup: registered as provisioning, made from the copy, active once its counts match. */
async function restoreAsNew(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backup: Backup; server: Server; schemas: readonly string[]; slug: string },
): Promise<Tenant> {
  const { registry, storage, config } = deps;
  const { backup, server } = input;
  const place = placeTenant(input.slug, backup.kind, config.tenants);
  const tenant = await registry.insertTenant({ slug: input.slug, name: input.slug, kind: backup.kind, server: server.name, ...place, operationId: op.id });
  try {
    if (backup.kind === 'database') await materialize(deps, backup, server, tenant.database, { purpose: 'tenant', tenantId: tenant.id });
    else await copySchemasAs(deps, op, set, { backup, server, tenant, schemas: input.schemas });
    await registry.activate(tenant.slug);
    return await registry.getTenant(tenant.slug);
  } catch (error) {
    // Only a tenant still being made is undone: one activated before the error stays as it is. When even
    // that cannot be read, the operation's recovery (which runs when the command fails) decides.
    if (await registry.stillProvisioning(tenant).catch(() => false)) {
      await removeTenantStorage(tenant, storage).catch(() => undefined);
      await registry.deleteUnfinishedTenant(tenant).catch(() => undefined);
    }
    throw error;
  }
}

/**
 * A schema tenant's dump holds its schemas by name. To give them a new tenant's
 * names: restore into a scratch database, rename the schemas there, dump them
 * again and restore that into the shared database, under names claimed for the
 * new tenant (refused if anything holds them).
 */
async function copySchemasAs(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backup: Backup; server: Server; tenant: Tenant; schemas: readonly string[] },
): Promise<void> {
  const { storage, config } = deps;
  const { backup, server, tenant } = input;
  const original = placeTenant(backup.tenant, 'schema', config.tenants).schema;
  const renames = schemaRenames(input.schemas, original, tenant.schema, set);
  const suffix = op.id.replaceAll('-', '');
  const scratch = await materialize(deps, backup, server, `flotilla_restore_${suffix}`, { purpose: 'scratch', operationId: op.id });
  const file = await storage.claims.claim(localFile(join(config.backup.dir, `flotilla_restore_${suffix}.dump`)), { purpose: 'scratch', operationId: op.id });
  try {
    await withClient(server.url, scratch.name, async (client) => {
      for (const [from, to] of renames) await renameSchema(client, from, to);
      requireTool('pg_dump', await serverMajor(client));
    });
    await mkdir(config.backup.dir, { recursive: true });
    const run = await runTool(
      'pg_dump',
      ['--format=custom', '--file', file.name, ...[...renames.values()].flatMap((s) => ['--schema', `"${s}"`])],
      withDatabase(server.url, scratch.name),
    );
    if (run.code !== 0)
      throw new FlotillaError('FLO_RESTORE_FAILED', `pg_dump of the renamed copy failed: ${run.stderr.trim()}`, { hint: 'Check the message above; nothing was changed.' });
    await storage.ensureSharedDatabase(server.name, tenant.database);
    for (const name of renames.values())
      await storage.claimAbsent({ server: server.name, kind: 'schema', database: tenant.database, name }, { purpose: 'tenant', tenantId: tenant.id });
    await pgRestore({ ...backup, location: file.name }, server, tenant.database);
    const counts = await withClient(server.url, tenant.database, async (client) =>
      countRows(client, { schemas: await existingSchemas(client, [...renames.values()]), tenantSchema: tenant.schema }),
    );
    checkCounts(backup, counts);
  } finally {
    await storage.drop(file).catch(() => undefined);
    await storage.drop(scratch).catch(() => undefined);
  }
}

/** Old schema name → the new tenant's: its own schema, and `<schema>__<name>` for each one its migrations create. */
function schemaRenames(schemas: readonly string[], original: string, target: string, set: MigrationSet | undefined): Map<string, string> {
  const from = tenantSchemaMap(original, set?.createdSchemas ?? []);
  const to = tenantSchemaMap(target, set?.createdSchemas ?? []);
  const byOld = new Map([...from].map(([created, name]) => [name, to.get(created)!]));
  const renames = new Map<string, string>();
  for (const schema of schemas) {
    const renamed = byOld.get(schema) ?? (schema.startsWith(`${original}__`) ? `${target}${schema.slice(original.length)}` : undefined);
    if (!renamed || Buffer.byteLength(renamed) > 63) {
      throw new FlotillaError('FLO_RESTORE_FAILED', `The backup holds schema "${schema}", which has no name for the new tenant ${target}.`, {
        hint: 'Restore it into its own tenant, or pick a shorter slug for the new tenant.',
        meta: { schema },
      });
    }
    renames.set(schema, renamed);
  }
  return renames;
}

/** A database named `name` holding the backup, with its row counts checked; removed again on any failure. */
async function materialize(deps: RestoreDeps, backup: Backup, server: Server, name: string, owner: Parameters<OwnedStorage['createDatabase']>[1]): Promise<StorageClaim> {
  const { storage } = deps;
  const claim = await storage.createDatabase({ server: server.name, kind: 'database', name }, owner, backup.strategy === 'snapshot' ? backup.location : undefined);
  try {
    if (backup.strategy === 'dump') await pgRestore(backup, server, name);
    const tenantSchema = backup.kind === 'schema' ? placeTenant(backup.tenant, 'schema', deps.config.tenants).schema : undefined;
    const counts = await withClient(server.url, name, async (client) =>
      countRows(client, backup.kind === 'schema' ? { schemas: await existingSchemas(client, await backupSchemas(backup)), tenantSchema } : {}),
    );
    checkCounts(backup, counts);
    return claim;
  } catch (error) {
    await storage.drop(claim).catch(() => undefined);
    throw error;
  }
}

/** The schemas a schema tenant's dump holds: recorded with it, or read from the dump's table of contents. */
async function backupSchemas(backup: Backup): Promise<string[]> {
  if (backup.schemas) return [...backup.schemas];
  requireTool('pg_restore', 0);
  const run = await runTool('pg_restore', ['--list', backup.location], '');
  const names = [...run.stdout.matchAll(/^\d+; \d+ \d+ SCHEMA - (\S+) /gm)].map((m) => m[1]!.replace(/^"|"$/g, ''));
  return [...new Set(names)];
}

/** Refuses a dump whose file is gone or changed since it was taken, or a snapshot database that is gone. */
async function verifyBackupIntact(backup: Backup, server: Server): Promise<void> {
  if (backup.strategy === 'snapshot') {
    if (!(await withClient(server.url, adminDatabase(server.url), (admin) => databaseExists(admin, backup.location)))) {
      throw new FlotillaError('FLO_BACKUP_TAMPERED', `Snapshot database ${backup.location} of backup ${backup.id.slice(0, 8)} no longer exists.`, {
        hint: 'Pick another backup (`flotilla backup list <slug>`).',
        meta: { backup: backup.id },
      });
    }
    return;
  }
  const actual = await fileChecksum(backup.location).catch(() => null);
  if (actual !== backup.checksum) {
    throw new FlotillaError(
      'FLO_BACKUP_TAMPERED',
      actual === null
        ? `Backup file ${backup.location} is missing.`
        : `Backup file ${backup.location} has changed since it was taken (SHA-256 ${actual.slice(0, 12)}…, recorded ${backup.checksum?.slice(0, 12)}…): it is refused.`,
      {
        hint: 'Restore another backup (`flotilla backup list <slug>`); a file that no longer matches its checksum cannot be trusted.',
        meta: { backup: backup.id, file: backup.location },
      },
    );
  }
}

async function pgRestore(backup: Backup, server: Server, database: string): Promise<void> {
  const major = await withClient(server.url, adminDatabase(server.url), serverMajor);
  requireTool('pg_restore', major);
  const run = await runTool('pg_restore', ['--exit-on-error', '--single-transaction', '--no-owner', backup.location], withDatabase(server.url, database));
  if (run.code !== 0) {
    throw new FlotillaError('FLO_RESTORE_FAILED', `pg_restore of backup ${backup.id.slice(0, 8)} failed: ${run.stderr.trim()}`, {
      hint: 'Nothing was replaced: the tenant is as it was. Check the message above.',
      meta: { backup: backup.id },
    });
  }
}

function checkCounts(backup: Backup, restored: RowCounts): void {
  const differences = countDifferences(backup.rowCounts, restored);
  if (differences.length > 0) {
    throw new FlotillaError('FLO_RESTORE_FAILED', `The restored copy of backup ${backup.id.slice(0, 8)} does not hold the rows recorded with it:\n  ${differences.join('\n  ')}`, {
      hint: 'Nothing was replaced: the tenant is as it was. The backup may be incomplete; try another one.',
      meta: { backup: backup.id, differences },
    });
  }
}
