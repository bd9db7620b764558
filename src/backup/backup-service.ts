import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { FlotillaConfig } from '../config/config.js';
import { FlotillaError, isFlotillaError } from '../core/errors.js';
import { newestVersion } from '../core/migration-file.js';
import type { MigrationSet } from '../core/migration-set.js';
import { assertSlug } from '../core/slug.js';
import { quoteIdent } from '../core/sql/quote.js';
import { connect, withClient } from '../postgres/connect.js';
import { historyExists, readHistory } from '../postgres/history.js';
import { requireTool, runTool, serverMajor } from '../postgres/pg-tools.js';
import { createDatabase, databaseExists, dropDatabase, dropSchemas, ensureDatabase } from '../postgres/provision.js';
import { adminDatabase, withDatabase } from '../postgres/server-url.js';
import type { Registry } from '../registry/registry.js';
import type { Server, Tenant } from '../registry/types.js';
import { ownedSchemas, placeTenant } from '../tenants/placement.js';
import type { Backup, BackupStrategy } from './catalog.js';
import type { RowCounts } from './row-counts.js';
import { countDifferences, countRows } from './row-counts.js';

export interface BackupOptions {
  readonly strategy?: BackupStrategy;
  /** `manual`, or `before migrate` for automatic backups. */
  readonly reason: string;
  readonly runId?: string | null;
  /** Keep this many backups of the tenant afterwards (0: all). */
  readonly keep?: number;
}

type BackupConfig = FlotillaConfig['backup'];

/**
 * Takes and restores tenant backups: `dump` (pg_dump custom format, checksummed)
 * or `snapshot` (CREATE DATABASE … TEMPLATE, database tenants on the same server).
 * Each backup records the exact row counts at the moment it was taken; a restore
 * must reproduce them before it replaces anything.
 */
export class BackupService {
  constructor(
    private readonly registry: Registry,
    private readonly config: BackupConfig,
    private readonly tenantsConfig: FlotillaConfig['tenants'],
  ) {}

  async backup(tenant: Tenant, server: Server, set: MigrationSet, options: BackupOptions): Promise<Backup> {
    const strategy = options.strategy ?? this.config.strategy;
    let taken: Omit<Backup, 'createdAt'>;
    if (strategy === 'snapshot') {
      try {
        taken = await this.snapshot(tenant, server, options);
      } catch (error) {
        if (!(isFlotillaError(error) && error.code === 'FLO_SNAPSHOT_UNAVAILABLE' && this.config.fallbackToDump && options.strategy === undefined)) throw error;
        taken = await this.dump(tenant, server, set, options);
      }
    } else {
      taken = await this.dump(tenant, server, set, options);
    }
    const backup = await this.registry.backups.insert(taken);
    const keep = options.keep ?? this.config.keep;
    if (keep > 0) await this.prune(tenant.slug, keep, [server]);
    return backup;
  }

  /** Removes a tenant's backups beyond the newest `keep`: files, snapshot databases and catalog rows. */
  async prune(slug: string, keep: number, servers: readonly Server[]): Promise<Backup[]> {
    const removed = (await this.registry.backups.list(slug)).slice(keep);
    for (const backup of removed) {
      if (backup.strategy === 'dump') await rm(backup.location, { force: true });
      else {
        const server = servers.find((s) => s.name === backup.server) ?? (await this.registry.getServer(backup.server));
        await withClient(server.url, adminDatabase(server.url), (admin) => dropDatabase(admin, backup.location));
      }
      await this.registry.backups.delete(backup.id);
    }
    return removed;
  }

  private async snapshot(tenant: Tenant, server: Server, options: BackupOptions): Promise<Omit<Backup, 'createdAt'>> {
    if (tenant.kind !== 'database') {
      throw new FlotillaError('FLO_SNAPSHOT_UNAVAILABLE', `Tenant ${tenant.slug} is a schema tenant: a snapshot copies a whole database, so it can only back up database tenants.`, {
        hint: 'Use --strategy dump (or backup.fallbackToDump: true, the default, to fall back automatically).',
        meta: { tenant: tenant.slug },
      });
    }
    const id = randomUUID();
    const name = `flotilla_snap_${id.replaceAll('-', '')}`;
    await withClient(server.url, adminDatabase(server.url), async (admin) => {
      // PostgreSQL waits 5 s for sessions to leave before it refuses: ask first, and fail within a second
      // (long enough for a session that was just closed, such as the upgrade's own, to be gone).
      let busy = await sessionsOn(admin, tenant.database);
      for (let i = 0; busy && i < 10; i++) {
        await sleep(100);
        busy = await sessionsOn(admin, tenant.database);
      }
      if (busy) throw snapshotUnavailable(tenant, busy);
      try {
        await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(tenant.database)}`);
      } catch (cause) {
        if ((cause as { code?: string }).code !== '55006') throw cause;
        throw snapshotUnavailable(tenant, (await sessionsOn(admin, tenant.database)) ?? { n: 'some', apps: 'unknown' }, cause);
      }
    });
    try {
      const { counts, version, size } = await withClient(server.url, name, async (client) => ({
        counts: await countRows(client, {}),
        version: await schemaVersion(client, 'public'),
        size: Number((await client.query(`SELECT pg_database_size(current_database()) AS s`)).rows[0].s),
      }));
      return { id, tenant: tenant.slug, kind: tenant.kind, server: server.name, strategy: 'snapshot', location: name, sizeBytes: size, checksum: null, schemaVersion: version, rowCounts: counts, reason: options.reason, runId: options.runId ?? null };
    } catch (error) {
      await withClient(server.url, adminDatabase(server.url), (admin) => dropDatabase(admin, name)).catch(() => undefined);
      throw error;
    }
  }

  private async dump(tenant: Tenant, server: Server, set: MigrationSet, options: BackupOptions): Promise<Omit<Backup, 'createdAt'>> {
    const id = randomUUID();
    const client = await connect(server.url, tenant.database, 'flotilla backup');
    const dir = join(this.config.dir, tenant.slug);
    const file = join(dir, `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}_${id.slice(0, 8)}.dump`);
    const partial = `${file}.partial`;
    try {
      requireTool('pg_dump', await serverMajor(client));
      const schemas = tenant.kind === 'schema' ? ownedSchemas(tenant, set) : undefined;
      await mkdir(dir, { recursive: true });
      // Count rows in the very snapshot pg_dump will dump, so the two always agree.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const snapshot = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]!.id;
      const existingSchemas = schemas ? await presentSchemas(client, schemas) : undefined;
      const counts = await countRows(client, { schemas: existingSchemas, tenantSchema: tenant.kind === 'schema' ? tenant.schema : undefined });
      const version = await schemaVersion(client, tenant.schema);
      const args = ['--format=custom', `--snapshot=${snapshot}`, '--file', partial, ...(existingSchemas ?? []).flatMap((s) => ['--schema', `"${s}"`])];
      const run = await runTool('pg_dump', args, withDatabase(server.url, tenant.database));
      if (run.code !== 0) {
        throw new FlotillaError('FLO_BACKUP_FAILED', `pg_dump of tenant ${tenant.slug} failed: ${run.stderr.trim()}`, {
          hint: 'Check the message above (disk space, permissions on backup.dir, the server); nothing was recorded.',
          meta: { tenant: tenant.slug },
        });
      }
      await client.query('COMMIT');
      await rename(partial, file);
      const { size } = await stat(file);
      return { id, tenant: tenant.slug, kind: tenant.kind, server: server.name, strategy: 'dump', location: file, sizeBytes: size, checksum: await fileChecksum(file), schemaVersion: version, rowCounts: counts, reason: options.reason, runId: options.runId ?? null };
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Restores a backup into its tenant (offline meanwhile) or, with `as`, into a
   * new tenant. The copy is made aside, its row counts must equal the backup's,
   * and only then does it replace anything.
   */
  async restore(backupId: string, slug: string, options: { as?: string } = {}): Promise<{ backup: Backup; tenant: Tenant }> {
    const backup = await this.registry.backups.get(backupId);
    if (backup.tenant !== slug) {
      throw new FlotillaError('FLO_BACKUP_NOT_FOUND', `Backup ${backup.id.slice(0, 8)} belongs to tenant ${backup.tenant}, not ${slug}.`, {
        hint: `Run \`flotilla backup list ${slug}\` for its backups, or restore it with --as <new-slug> to make a new tenant from it.`,
        meta: { backup: backup.id, tenant: slug },
      });
    }
    if (options.as !== undefined) assertSlug(options.as);
    const server = await this.registry.getServer(backup.server);
    await verifyBackupIntact(backup, server);
    if (options.as !== undefined) return { backup, tenant: await this.restoreAsNew(backup, server, options.as) };
    const tenant = await this.registry.getTenant(slug);
    const previous = tenant.status;
    await this.registry.setStatus(slug, 'restoring');
    try {
      if (tenant.kind === 'database') await this.replaceDatabase(backup, tenant, server);
      else await this.replaceSchemas(backup, tenant, server);
    } finally {
      await this.registry.setStatus(slug, previous);
    }
    return { backup, tenant: await this.registry.getTenant(slug) };
  }

  /** Database tenant: restore into a new database, check it, then swap it in by renaming. */
  private async replaceDatabase(backup: Backup, tenant: Tenant, server: Server): Promise<void> {
    const short = backup.id.slice(0, 8);
    const scratch = `flotilla_restore_${short}`;
    await this.materialize(backup, server, scratch);
    await withClient(server.url, adminDatabase(server.url), async (admin) => {
      const old = `flotilla_old_${short}`;
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [tenant.database]);
      try {
        await admin.query(`ALTER DATABASE ${quoteIdent(tenant.database)} RENAME TO ${quoteIdent(old)}`);
      } catch (cause) {
        // Someone reconnected in between: the tenant is untouched; remove the copy.
        await dropDatabase(admin, scratch);
        throw new FlotillaError('FLO_RESTORE_FAILED', `Could not swap the restored copy in: ${(cause as Error).message}`, {
          hint: 'Sessions keep reconnecting to the tenant database: stop the application for this tenant and run the restore again. Nothing was replaced.',
          meta: { backup: backup.id, tenant: tenant.slug },
          cause,
        });
      }
      await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} RENAME TO ${quoteIdent(tenant.database)}`);
      await dropDatabase(admin, old);
    });
  }

  /** A database named `name` holding the backup, with its row counts checked; removed again on any failure. */
  private async materialize(backup: Backup, server: Server, name: string): Promise<void> {
    await withClient(server.url, adminDatabase(server.url), async (admin) => {
      await dropDatabase(admin, name);
      if (backup.strategy === 'snapshot') await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(backup.location)}`);
      else await createDatabase(admin, name);
    });
    try {
      if (backup.strategy === 'dump') await pgRestore(backup, server, name);
      await withClient(server.url, name, async (client) => checkCounts(backup, await countRows(client, backup.kind === 'schema' ? { schemas: await tenantSchemasIn(client, schemaOfBackup(backup, this.tenantsConfig)), tenantSchema: schemaOfBackup(backup, this.tenantsConfig) } : {})));
    } catch (error) {
      await withClient(server.url, adminDatabase(server.url), (admin) => dropDatabase(admin, name)).catch(() => undefined);
      throw error;
    }
  }

  /** Schema tenant: move its schemas aside, restore the dump's, check them, then drop the old ones (or put them back). */
  private async replaceSchemas(backup: Backup, tenant: Tenant, server: Server): Promise<void> {
    const short = backup.id.slice(0, 8);
    await withClient(server.url, tenant.database, async (client) => {
      const current = await tenantSchemasIn(client, tenant.schema);
      const aside = current.map((schema, i) => ({ schema, temp: `flotilla_old_${short}_${i}` }));
      await client.query('BEGIN');
      for (const { schema, temp } of aside) await client.query(`ALTER SCHEMA ${quoteIdent(schema)} RENAME TO ${quoteIdent(temp)}`);
      await client.query('COMMIT');
      try {
        await pgRestore(backup, server, tenant.database);
        checkCounts(backup, await countRows(client, { schemas: await tenantSchemasIn(client, tenant.schema), tenantSchema: tenant.schema }));
      } catch (error) {
        await dropSchemas(client, await tenantSchemasIn(client, tenant.schema));
        await client.query('BEGIN');
        for (const { schema, temp } of aside) await client.query(`ALTER SCHEMA ${quoteIdent(temp)} RENAME TO ${quoteIdent(schema)}`);
        await client.query('COMMIT');
        throw error;
      }
      await dropSchemas(client, aside.map((a) => a.temp));
    });
  }

  /** A new tenant from a backup: registered as provisioning, made from the copy, active once its counts match. */
  private async restoreAsNew(backup: Backup, server: Server, newSlug: string): Promise<Tenant> {
    const place = placeTenant(newSlug, backup.kind, this.tenantsConfig);
    const tenant = await this.registry.insertTenant({ slug: newSlug, name: newSlug, kind: backup.kind, server: server.name, ...place });
    try {
      if (backup.kind === 'database') {
        await this.materialize(backup, server, tenant.database);
      } else {
        await this.copySchemasAs(backup, server, tenant);
      }
      await this.registry.setStatus(newSlug, 'active');
      return await this.registry.getTenant(newSlug);
    } catch (error) {
      if (backup.kind === 'database') await withClient(server.url, adminDatabase(server.url), (admin) => dropDatabase(admin, tenant.database)).catch(() => undefined);
      await this.registry.deleteTenant(newSlug);
      throw error;
    }
  }

  /**
   * A schema tenant's dump holds its schemas by name. To give them a new tenant's
   * names: restore into a scratch database, rename the schemas there, dump them
   * again and restore that into the shared database.
   */
  private async copySchemasAs(backup: Backup, server: Server, tenant: Tenant): Promise<void> {
    const short = backup.id.slice(0, 8);
    const scratch = `flotilla_restore_${short}`;
    const file = join(this.config.dir, `${scratch}.dump`);
    const original = schemaOfBackup(backup, this.tenantsConfig);
    await this.materialize(backup, server, scratch);
    try {
      const renamed = await withClient(server.url, scratch, async (client) => {
        const names: string[] = [];
        for (const schema of await tenantSchemasIn(client, original)) {
          const target = tenant.schema + schema.slice(original.length);
          await client.query(`ALTER SCHEMA ${quoteIdent(schema)} RENAME TO ${quoteIdent(target)}`);
          names.push(target);
        }
        requireTool('pg_dump', await serverMajor(client));
        return names;
      });
      await mkdir(this.config.dir, { recursive: true });
      const run = await runTool('pg_dump', ['--format=custom', '--file', file, ...renamed.flatMap((s) => ['--schema', `"${s}"`])], withDatabase(server.url, scratch));
      if (run.code !== 0) throw new FlotillaError('FLO_RESTORE_FAILED', `pg_dump of the renamed copy failed: ${run.stderr.trim()}`, { hint: 'Check the message above; nothing was changed.' });
      await withClient(server.url, adminDatabase(server.url), (admin) => ensureDatabase(admin, tenant.database));
      await pgRestore({ ...backup, location: file }, server, tenant.database);
      await withClient(server.url, tenant.database, async (client) => {
        try {
          checkCounts(backup, await countRows(client, { schemas: await tenantSchemasIn(client, tenant.schema), tenantSchema: tenant.schema }));
        } catch (error) {
          await dropSchemas(client, await tenantSchemasIn(client, tenant.schema));
          throw error;
        }
      });
    } finally {
      await rm(file, { force: true });
      await withClient(server.url, adminDatabase(server.url), (admin) => dropDatabase(admin, scratch)).catch(() => undefined);
    }
  }
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
      { hint: 'Restore another backup (`flotilla backup list <slug>`); a file that no longer matches its checksum cannot be trusted.', meta: { backup: backup.id, file: backup.location } },
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

/** The tenant's schema and the ones derived from it (`<schema>__<name>`) that exist in this database. */
async function tenantSchemasIn(client: pg.Client, schema: string): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '__') ORDER BY 1`, [schema]);
  return rows.map((r) => r.nspname);
}

async function presentSchemas(client: pg.Client, schemas: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) ORDER BY 1', [schemas]);
  return rows.map((r) => r.nspname);
}

function schemaOfBackup(backup: Backup, tenants: FlotillaConfig['tenants']): string {
  return placeTenant(backup.tenant, backup.kind, tenants).schema;
}

async function schemaVersion(client: pg.Client, schema: string): Promise<string | null> {
  if (!(await historyExists(client, schema))) return null;
  return newestVersion(await readHistory(client, schema));
}

function fileChecksum(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** The sessions connected to a database (count and application names), or null when there are none. */
async function sessionsOn(admin: pg.ClientBase, database: string): Promise<{ n: number | string; apps: string } | null> {
  const { rows } = await admin.query<{ n: number; apps: string | null }>(
    `SELECT count(*)::int AS n, string_agg(DISTINCT coalesce(nullif(application_name, ''), 'unnamed'), ', ') AS apps FROM pg_stat_activity WHERE datname = $1`,
    [database],
  );
  const found = rows[0];
  return found && found.n > 0 ? { n: found.n, apps: found.apps ?? 'unknown' } : null;
}

function snapshotUnavailable(tenant: Tenant, sessions: { n: number | string; apps: string }, cause?: unknown): FlotillaError {
  return new FlotillaError(
    'FLO_SNAPSHOT_UNAVAILABLE',
    `Cannot snapshot tenant ${tenant.slug}: ${sessions.n} session(s) are connected to its database (${sessions.apps}), and PostgreSQL copies a database only when nobody is connected.`,
    { hint: 'Stop the application for this tenant (or take the tenant offline), or use --strategy dump, which works while the application runs.', meta: { tenant: tenant.slug }, ...(cause ? { cause } : {}) },
  );
}
