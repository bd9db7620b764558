import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import { LOCK_NAMESPACES } from '../postgres/lock-namespaces.js';

export interface BundleInstall {
  readonly id: string;
  readonly product: string;
  readonly version: string;
  /** SHA-256 of the bundle file. */
  readonly digest: string;
  readonly keyId: string;
  readonly outcome: 'installed' | 'failed';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly installedBy: string;
  /** The apply's report, as JSON. */
  readonly report: unknown;
}

const COLUMNS = 'id, product, version, digest, key_id, outcome, started_at, finished_at, installed_by, report';

/** The site's record of bundles applied (control migration 0009): append-only, newest last. */
export class BundleInstalls {
  constructor(private readonly pool: pg.Pool) {}

  async record(install: Omit<BundleInstall, 'finishedAt'>): Promise<BundleInstall> {
    const { rows } = await this.pool.query(
      `INSERT INTO flotilla.bundle_installs (id, product, version, digest, key_id, outcome, started_at, installed_by, report)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLUMNS}`,
      [install.id, install.product, install.version, install.digest, install.keyId, install.outcome, install.startedAt, install.installedBy, JSON.stringify(install.report)],
    );
    return toInstall(rows[0]);
  }

  /**
   * Runs `fn` as the site's only apply: a session lock on the control database,
   * released when `fn` ends or the process dies. A second apply meanwhile is refused.
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, 1) AS ok', [LOCK_NAMESPACES.bundleApply]);
      if (!rows[0]!.ok) {
        throw new FlotillaError('FLO_BUNDLE_IN_PROGRESS', 'Another bundle is being applied at this site right now.', {
          hint: 'Wait for it to finish (`flotilla bundle history` shows it once done), then apply again if it is still needed. Nothing was changed.',
        });
      }
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, 1)', [LOCK_NAMESPACES.bundleApply]).catch(() => undefined);
      }
    } finally {
      client.release();
    }
  }

  /** Every attempt, oldest first; of one product when given. */
  async list(product?: string): Promise<BundleInstall[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.bundle_installs WHERE $1::text IS NULL OR product = $1 ORDER BY finished_at, id`, [product ?? null]);
    return rows.map(toInstall);
  }
}

function toInstall(row: Record<string, unknown>): BundleInstall {
  return {
    id: row.id as string,
    product: row.product as string,
    version: row.version as string,
    digest: row.digest as string,
    keyId: row.key_id as string,
    outcome: row.outcome as BundleInstall['outcome'],
    startedAt: (row.started_at as Date).toISOString(),
    finishedAt: (row.finished_at as Date).toISOString(),
    installedBy: row.installed_by as string,
    report: row.report,
  };
}
