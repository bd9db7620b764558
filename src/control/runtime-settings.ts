import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import type { Maintenance } from './runtime-directory.js';
import { ControlDirectory } from './runtime-directory.js';
import { inTransaction } from './transaction.js';

export interface MaintenanceInput {
  readonly message?: string | null;
  readonly retryAfter: number;
}

export interface DomainRow {
  readonly host: string;
  readonly tenant: string;
  readonly primary: boolean;
}

/**
 * What operators set for running apps: maintenance (per tenant, or the whole
 * fleet) and custom domains. Every write here wakes the apps through the
 * control database's notifications (control migration 0008).
 */
export class RuntimeSettings {
  constructor(private readonly pool: pg.Pool) {}

  /** Puts tenants under maintenance; returns the slugs changed (none found: an empty list). */
  async tenantsDown(slugs: readonly string[], input: MaintenanceInput): Promise<string[]> {
    const { rows } = await this.pool.query<{ slug: string }>(
      `UPDATE flotilla.tenants SET maintenance = jsonb_build_object('message', $2::text, 'retryAfter', $3::int, 'since', now()), updated_at = now()
        WHERE slug = ANY($1) RETURNING slug`,
      [slugs, input.message ?? null, input.retryAfter],
    );
    return rows.map((r) => r.slug);
  }

  async tenantsUp(slugs: readonly string[] | 'all'): Promise<string[]> {
    const { rows } =
      slugs === 'all'
        ? await this.pool.query<{ slug: string }>('UPDATE flotilla.tenants SET maintenance = NULL, updated_at = now() WHERE maintenance IS NOT NULL RETURNING slug')
        : await this.pool.query<{ slug: string }>('UPDATE flotilla.tenants SET maintenance = NULL, updated_at = now() WHERE slug = ANY($1) RETURNING slug', [slugs]);
    return rows.map((r) => r.slug);
  }

  async fleetDown(input: MaintenanceInput): Promise<void> {
    await this.pool.query(
      `INSERT INTO flotilla.fleet_maintenance (message, retry_after) VALUES ($1, $2)
       ON CONFLICT (only_row) DO UPDATE SET message = EXCLUDED.message, retry_after = EXCLUDED.retry_after, since = now()`,
      [input.message ?? null, input.retryAfter],
    );
  }

  /** Lifts the fleet's maintenance; true when it was down. */
  async fleetUp(): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM flotilla.fleet_maintenance');
    return (rowCount ?? 0) > 0;
  }

  fleetMaintenance(): Promise<Maintenance | null> {
    return new ControlDirectory(this.pool).fleetMaintenance();
  }

  async tenantsInMaintenance(): Promise<{ slug: string; maintenance: Maintenance }[]> {
    const { rows } = await this.pool.query<{ slug: string; maintenance: Maintenance }>(
      'SELECT slug, maintenance FROM flotilla.tenants WHERE maintenance IS NOT NULL ORDER BY slug',
    );
    return rows;
  }

  async addDomain(slug: string, host: string, primary: boolean): Promise<DomainRow> {
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ id: string }>('SELECT id FROM flotilla.tenants WHERE slug = $1', [slug]);
      if (!rows[0]) throw new FlotillaError('FLO_TENANT_NOT_FOUND', `No tenant ${slug}.`, { hint: 'List tenants with `flotilla tenant list`.', meta: { tenant: slug } });
      const owner = await new ControlDirectory(client).slugByHost(host);
      if (owner) {
        throw new FlotillaError('FLO_TENANT_EXISTS', `Domain ${host} already belongs to tenant ${owner}.`, {
          hint: owner === slug ? 'Nothing to do.' : `Remove it from ${owner} first (flotilla tenant domain remove ${owner} ${host}).`,
          meta: { tenant: owner, host },
        });
      }
      if (primary) await client.query('UPDATE flotilla.domains SET is_primary = false WHERE tenant_id = $1 AND is_primary', [rows[0].id]);
      await client.query('INSERT INTO flotilla.domains (host, tenant_id, is_primary) VALUES ($1, $2, $3)', [host, rows[0].id, primary]).catch((error: { code?: string }) => {
        // Added by someone else meanwhile.
        if (error.code !== '23505') throw error;
        throw new FlotillaError('FLO_TENANT_EXISTS', `Domain ${host} was just added to a tenant.`, {
          hint: 'See whose it is with `flotilla tenant domain list`.',
          meta: { tenant: slug, host },
        });
      });
      return { host, tenant: slug, primary };
    });
  }

  /** Removes a tenant's domain; false when the tenant has no such domain. */
  async removeDomain(slug: string, host: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM flotilla.domains d USING flotilla.tenants t WHERE d.tenant_id = t.id AND t.slug = $1 AND d.host = $2', [slug, host]);
    return (rowCount ?? 0) > 0;
  }

  async domains(slug?: string): Promise<DomainRow[]> {
    const { rows } = await this.pool.query<{ host: string; slug: string; is_primary: boolean }>(
      `SELECT d.host, t.slug, d.is_primary FROM flotilla.domains d JOIN flotilla.tenants t ON t.id = d.tenant_id
        WHERE $1::text IS NULL OR t.slug = $1 ORDER BY t.slug, d.host`,
      [slug ?? null],
    );
    return rows.map((r) => ({ host: r.host, tenant: r.slug, primary: r.is_primary }));
  }
}
