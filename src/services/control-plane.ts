import { fileURLToPath } from 'node:url';
import { Registry } from '../control/registry.js';
import { CONTROL_SCHEMA } from '../control/registry.js';
import type { FlotillaError } from '../core/errors.js';
import { loadMigrationSet } from '../core/migration-set.js';
import { MAIN_SERVER } from '../core/tenant.js';
import { migrateTarget } from '../engine/migrate-target.js';
import { withClient } from '../postgres/connect.js';
import { ensureDatabase } from '../postgres/provision.js';

const CONTROL_MIGRATIONS = fileURLToPath(new URL('../control/migrations', import.meta.url));

/**
 * The control database, made if needed and migrated by Flotilla's own engine,
 * with the server holding it registered as `main` and the database claimed as
 * Flotilla's own (no tenant can ever be given its name).
 */
export async function openControlPlane(serverUrl: string, controlDatabase: string): Promise<Registry> {
  const exists = await withClient(serverUrl, controlDatabase, async () => true).catch((error: FlotillaError) => {
    if ((error.cause as { code?: string } | undefined)?.code === '3D000') return false;
    throw error;
  });
  if (!exists) await withClient(serverUrl, 'postgres', (admin) => ensureDatabase(admin, controlDatabase));
  const set = await loadMigrationSet(CONTROL_MIGRATIONS);
  await migrateTarget({ tenant: 'control plane', serverUrl, database: controlDatabase, schema: CONTROL_SCHEMA, createSchema: true }, set);
  const registry = Registry.open(serverUrl, controlDatabase);
  try {
    await registry.upsertMainServer(serverUrl);
    await registry.separateServerPasswords();
    const control = { server: MAIN_SERVER, kind: 'database', name: controlDatabase } as const;
    if (!(await registry.storage.find(control))) await registry.storage.claim(control, { purpose: 'control' }).catch(() => undefined);
    return registry;
  } catch (error) {
    await registry.close();
    throw error;
  }
}
