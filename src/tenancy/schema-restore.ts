import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '../core/errors.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { OperationContext } from '../core/operation.js';
import { tenantSchemaMap } from '../core/sql/schema-rewrite.js';
import type { Backup } from '../control/backup-catalog.js';
import type { StorageClaim } from '../control/storage.js';
import type { Server, Tenant } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { requireTool, runTool, serverMajor } from '../postgres/pg-tools.js';
import { existingSchemas, moveSchemasAside, renameSchema } from '../postgres/provision.js';
import { countRows } from '../postgres/row-counts.js';
import { withDatabase } from '../postgres/server-url.js';
import { localFile } from './owned-storage.js';
import { derivedName } from '../core/slug.js';
import type { RestoreDeps } from './restore-steps.js';
import { checkCounts, materialize, pgRestore } from './restore-steps.js';
import { finishSwap, undoSwap } from './swap.js';
import { claimTenantSchemas } from './tenant-storage.js';

/**
 * Schema tenant: its schemas are moved aside in one transaction, the dump is
 * restored under their names, counted, and only then are the old ones dropped;
 * on any failure the restored ones go and the old ones come back.
 */
export async function replaceSchemas(
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
  await withClient(server.url, tenant.database, (client) =>
    moveSchemasAside(
      client,
      asides.map((a) => ({ from: a.asideOf!, to: a.name })),
    ),
  );
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

/**
 * A schema tenant's dump holds its schemas by name. To give them a new tenant's
 * names: restore into a scratch database, rename the schemas there, dump them
 * again and restore that into the shared database, under names claimed for the
 * new tenant (refused if anything holds them).
 */
export async function copySchemasAs(
  deps: RestoreDeps,
  op: OperationContext,
  set: MigrationSet | undefined,
  input: { backup: Backup; server: Server; tenant: Tenant; schemas: readonly string[] },
): Promise<void> {
  const { storage, config } = deps;
  const { backup, server, tenant } = input;
  const original = derivedName(config.tenants.schemaPrefix, backup.tenant);
  const renames = schemaRenames(input.schemas, original, tenant.schema, set);
  const suffix = op.id.replaceAll('-', '');
  const scratch = await materialize(
    deps,
    backup,
    server,
    `flotilla_restore_${suffix}`,
    { purpose: 'scratch', operationId: op.id },
    { schemas: input.schemas, tenantSchema: original },
  );
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
