import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import type { TenantKind } from '../core/tenant.js';
import type { RowCounts } from '../postgres/row-counts.js';

export type BackupStrategy = 'dump' | 'snapshot';

export interface Backup {
  readonly id: string;
  readonly tenant: string;
  readonly kind: TenantKind;
  readonly server: string;
  readonly strategy: BackupStrategy;
  /** A dump file's path, or a snapshot database's name on the tenant's server. */
  readonly location: string;
  readonly sizeBytes: number;
  /** SHA-256 of a dump file (null for snapshots). */
  readonly checksum: string | null;
  readonly schemaVersion: string | null;
  readonly rowCounts: RowCounts;
  readonly reason: string;
  readonly runId: string | null;
  /** A schema tenant's dump: the schemas it holds (null for dumps taken before this was recorded). */
  readonly schemas?: readonly string[] | null;
  readonly createdAt: string;
}

const COLUMNS = 'id, tenant_slug, tenant_kind, server, strategy, location, size_bytes, checksum, schema_version, fingerprint, reason, run_id, schemas, created_at';

/** The backup catalog in the control database. */
export class BackupCatalog {
  constructor(private readonly pool: pg.Pool) {}

  async insert(backup: Omit<Backup, 'createdAt'>, client: Pick<pg.Pool, 'query'> = this.pool): Promise<Backup> {
    const { rows } = await client.query(
      `INSERT INTO flotilla.backups (id, tenant_slug, tenant_kind, server, strategy, location, size_bytes, checksum, schema_version, fingerprint, reason, run_id, schemas)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ${COLUMNS}`,
      [
        backup.id,
        backup.tenant,
        backup.kind,
        backup.server,
        backup.strategy,
        backup.location,
        backup.sizeBytes,
        backup.checksum,
        backup.schemaVersion,
        JSON.stringify(backup.rowCounts),
        backup.reason,
        backup.runId,
        backup.schemas ?? null,
      ],
    );
    return toBackup(rows[0]);
  }

  async list(tenant?: string): Promise<Backup[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.backups WHERE $1::text IS NULL OR tenant_slug = $1 ORDER BY created_at DESC`, [tenant ?? null]);
    return rows.map(toBackup);
  }

  /** By full id or a unique prefix of at least 8 characters. */
  async get(id: string): Promise<Backup> {
    const prefix = id.toLowerCase();
    const { rows } = /^[0-9a-f-]{8,36}$/.test(prefix) ? await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.backups WHERE id::text LIKE $1 || '%'`, [prefix]) : { rows: [] };
    if (rows.length !== 1) {
      throw new FlotillaError('FLO_BACKUP_NOT_FOUND', rows.length > 1 ? `Backup id ${id} is ambiguous (${rows.length} backups start with it).` : `No backup with id ${id}.`, {
        hint: 'See the backups with `flotilla backup list [<slug>]` and give a longer id.',
        meta: { backup: id },
      });
    }
    return toBackup(rows[0]);
  }

  async delete(id: string, client: Pick<pg.Pool, 'query'> = this.pool): Promise<void> {
    await client.query('DELETE FROM flotilla.backups WHERE id = $1', [id]);
  }
}

function toBackup(r: Record<string, unknown>): Backup {
  return {
    id: String(r.id),
    tenant: String(r.tenant_slug),
    kind: r.tenant_kind as TenantKind,
    server: String(r.server),
    strategy: r.strategy as BackupStrategy,
    location: String(r.location),
    sizeBytes: Number(r.size_bytes),
    checksum: (r.checksum as string | null) ?? null,
    schemaVersion: (r.schema_version as string | null) ?? null,
    rowCounts: r.fingerprint as RowCounts,
    reason: String(r.reason),
    runId: (r.run_id as string | null) ?? null,
    schemas: (r.schemas as string[] | null) ?? null,
    createdAt: (r.created_at as Date).toISOString(),
  };
}
