import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';

export type StorageKind = 'database' | 'schema' | 'role' | 'file';
export type StoragePurpose = 'tenant' | 'backup' | 'scratch' | 'aside' | 'shared' | 'control';

/** A storage object by name: a database on a server, a schema in one of its databases, a role, or a file. */
export interface StorageRef {
  /** A registered server's name; '' for a file on this machine. */
  readonly server: string;
  readonly kind: StorageKind;
  /** The database holding a schema. */
  readonly database?: string;
  readonly name: string;
}

/** Whose a storage object is, and why it exists. */
export interface StorageOwner {
  readonly purpose: StoragePurpose;
  readonly tenantId?: string | null;
  readonly backupId?: string | null;
  readonly operationId?: string | null;
  /** For an aside: the name whose content it holds. */
  readonly asideOf?: string | null;
}

export interface StorageClaim extends StorageRef, StorageOwner {
  readonly id: string;
  readonly database: string;
}

/** A pool or one session (inside a transaction). */
export type Queryable = Pick<pg.Pool, 'query'>;

const COLUMNS = 'id, server, kind, database_name, name, purpose, tenant_id, backup_id, operation_id, aside_of';

/**
 * The claims on storage objects, by name, in the control database. A name is
 * claimed before anything is made under it, and only while nothing exists there
 * (checked by the caller against the catalog), so whatever later exists under a
 * claimed name is its owner's. One name has at most one claim.
 */
export class StorageRegistry {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Claims a name for an owner. A name claimed by the same owner is returned as
   * it is; a name claimed by anyone else is refused.
   */
  async claim(ref: StorageRef, owner: StorageOwner, client: Queryable = this.pool): Promise<StorageClaim> {
    const { rows } = await client.query(
      `INSERT INTO flotilla.storage (server, kind, database_name, name, purpose, tenant_id, backup_id, operation_id, aside_of)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
      [ref.server, ref.kind, ref.database ?? '', ref.name, owner.purpose, owner.tenantId ?? null, owner.backupId ?? null, owner.operationId ?? null, owner.asideOf ?? null],
    );
    if (rows[0]) return toClaim(rows[0]);
    const existing = await this.find(ref, client);
    if (existing && sameOwner(existing, owner)) return existing;
    throw claimedByOther(ref, existing);
  }

  async find(ref: StorageRef, client: Queryable = this.pool): Promise<StorageClaim | undefined> {
    const { rows } = await client.query(`SELECT ${COLUMNS} FROM flotilla.storage WHERE server = $1 AND kind = $2 AND database_name = $3 AND name = $4`, [
      ref.server,
      ref.kind,
      ref.database ?? '',
      ref.name,
    ]);
    return rows[0] ? toClaim(rows[0]) : undefined;
  }

  async ofTenant(tenantId: string): Promise<StorageClaim[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.storage WHERE tenant_id = $1 AND purpose = 'tenant' ORDER BY kind, name`, [tenantId]);
    return rows.map(toClaim);
  }

  /** The tenants' own schemas (or roles), for many tenants at once. */
  async schemasOfTenants(tenantIds: readonly string[], kind: 'schema' | 'role' = 'schema'): Promise<Map<string, string[]>> {
    const { rows } = await this.pool.query<{ tenant_id: string; names: string[] }>(
      `SELECT tenant_id, array_agg(name ORDER BY name) AS names FROM flotilla.storage
        WHERE tenant_id = ANY($1::uuid[]) AND purpose = 'tenant' AND kind = $2 GROUP BY tenant_id`,
      [tenantIds, kind],
    );
    return new Map(rows.map((r) => [r.tenant_id, r.names]));
  }

  /** Every claim (the demo clears what its own previous run made). */
  async all(): Promise<StorageClaim[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.storage ORDER BY created_at`);
    return rows.map(toClaim);
  }

  async ofOperation(operationId: string): Promise<StorageClaim[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.storage WHERE operation_id = $1 ORDER BY created_at`, [operationId]);
    return rows.map(toClaim);
  }

  async ofBackup(backupId: string): Promise<StorageClaim | undefined> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.storage WHERE backup_id = $1`, [backupId]);
    return rows[0] ? toClaim(rows[0]) : undefined;
  }

  async release(ids: readonly string[], client: Queryable = this.pool): Promise<void> {
    if (ids.length > 0) await client.query('DELETE FROM flotilla.storage WHERE id = ANY($1::uuid[])', [ids]);
  }

  /** Gives a claim another purpose and owner (a scratch copy that became a tenant's, a backup being pruned). */
  async reassign(id: string, owner: StorageOwner, client: Queryable = this.pool): Promise<void> {
    await client.query('UPDATE flotilla.storage SET purpose = $2, tenant_id = $3, backup_id = $4, operation_id = $5, aside_of = $6 WHERE id = $1', [
      id,
      owner.purpose,
      owner.tenantId ?? null,
      owner.backupId ?? null,
      owner.operationId ?? null,
      owner.asideOf ?? null,
    ]);
  }
}

function sameOwner(claim: StorageClaim, owner: StorageOwner): boolean {
  return (
    claim.purpose === owner.purpose &&
    (claim.tenantId ?? null) === (owner.tenantId ?? null) &&
    (claim.operationId ?? null) === (owner.operationId ?? null) &&
    (claim.backupId ?? null) === (owner.backupId ?? null)
  );
}

export function describeRef(ref: StorageRef): string {
  if (ref.kind === 'schema') return `schema "${ref.name}" in database "${ref.database}" on server ${ref.server}`;
  if (ref.kind === 'file') return `file ${ref.name}`;
  return `${ref.kind} "${ref.name}" on server ${ref.server}`;
}

function claimedByOther(ref: StorageRef, existing: StorageClaim | undefined): FlotillaError {
  const whose = !existing
    ? 'something else'
    : existing.purpose === 'tenant'
      ? 'another tenant'
      : existing.purpose === 'backup'
        ? 'a backup'
        : existing.purpose === 'shared'
          ? 'the shared database of schema tenants'
          : existing.purpose === 'control'
            ? "Flotilla's control database"
            : 'an operation in progress';
  return new FlotillaError('FLO_STORAGE_TAKEN', `The ${describeRef(ref)} is registered as ${whose}'s: Flotilla will not use it for this.`, {
    hint: 'Pick another slug, or change the tenant name prefixes in the config; see what a tenant owns with `flotilla tenant show <slug>`.',
    meta: { kind: ref.kind, name: ref.name, server: ref.server, database: ref.database ?? null, claimedFor: existing?.purpose ?? null },
  });
}

function toClaim(r: Record<string, unknown>): StorageClaim {
  return {
    id: String(r.id),
    server: String(r.server),
    kind: r.kind as StorageKind,
    database: String(r.database_name),
    name: String(r.name),
    purpose: r.purpose as StoragePurpose,
    tenantId: (r.tenant_id as string | null) ?? null,
    backupId: (r.backup_id as string | null) ?? null,
    operationId: (r.operation_id as string | null) ?? null,
    asideOf: (r.aside_of as string | null) ?? null,
  };
}
