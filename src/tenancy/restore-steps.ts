import { FlotillaError } from '../core/errors.js';
import { fileChecksum } from '../core/checksum.js';
import type { FlotillaConfig } from '../config/config.js';
import type { Registry } from '../control/registry.js';
import type { Backup } from '../control/backup-catalog.js';
import type { StorageClaim } from '../control/storage.js';
import type { Server } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { requireTool, runTool, serverMajor } from '../postgres/pg-tools.js';
import { databaseExists } from '../postgres/provision.js';
import type { RowCounts } from '../postgres/row-counts.js';
import { countDifferences, countScopeRows } from '../postgres/row-counts.js';
import { adminDatabase, withDatabase } from '../postgres/server-url.js';
import type { OwnedStorage } from './owned-storage.js';

// The steps every restore shares, whatever the tenant's kind: a backup checked intact, a copy made from it, its rows counted.

export interface RestoreDeps {
  readonly registry: Registry;
  readonly storage: OwnedStorage;
  readonly config: FlotillaConfig;
}

/** A database named `name` holding the backup, with its row counts checked; removed again on any failure. */
export async function materialize(
  deps: RestoreDeps,
  backup: Backup,
  server: Server,
  name: string,
  owner: Parameters<OwnedStorage['createDatabase']>[1],
  scope: { schemas?: readonly string[]; tenantSchema?: string } = {},
): Promise<StorageClaim> {
  const { storage } = deps;
  const claim = await storage.createDatabase({ server: server.name, kind: 'database', name }, owner, backup.strategy === 'snapshot' ? backup.location : undefined);
  try {
    if (backup.strategy === 'dump') await pgRestore(backup, server, name);
    const counts = await withClient(server.url, name, (client) => countScopeRows(client, scope));
    checkCounts(backup, counts);
    return claim;
  } catch (error) {
    await storage.drop(claim).catch(() => undefined);
    throw error;
  }
}

/** The schemas a schema tenant's dump holds: recorded with it, or read from the dump's table of contents. */
export async function backupSchemas(backup: Backup): Promise<string[]> {
  if (backup.schemas) return [...backup.schemas];
  requireTool('pg_restore', 0);
  const run = await runTool('pg_restore', ['--list', backup.location], '');
  const names = [...run.stdout.matchAll(/^\d+; \d+ \d+ SCHEMA - (\S+) /gm)].map((m) => m[1]!.replace(/^"|"$/g, ''));
  return [...new Set(names)];
}

/** Refuses a dump whose file is gone or changed since it was taken, or a snapshot database that is gone. */
export async function verifyBackupIntact(backup: Backup, server: Server): Promise<void> {
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

export async function pgRestore(backup: Backup, server: Server, database: string): Promise<void> {
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

export function checkCounts(backup: Backup, restored: RowCounts): void {
  const differences = countDifferences(backup.rowCounts, restored);
  if (differences.length > 0) {
    throw new FlotillaError('FLO_RESTORE_FAILED', `The restored copy of backup ${backup.id.slice(0, 8)} does not hold the rows recorded with it:\n  ${differences.join('\n  ')}`, {
      hint: 'Nothing was replaced: the tenant is as it was. The backup may be incomplete; try another one.',
      meta: { backup: backup.id, differences },
    });
  }
}
