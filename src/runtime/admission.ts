import { createHash, timingSafeEqual } from 'node:crypto';
import type { DirectoryTenant, Maintenance } from '../control/runtime-directory.js';
import { FlotillaError } from '../core/errors.js';
import type { RequestInfo } from './resolution.js';

export interface MaintenanceOptions {
  /** A secret that lets the vendor's staff use a tenant under maintenance, sent in the bypass header or cookie. */
  readonly bypassSecret?: string;
  /** Default `X-Flotilla-Bypass`. */
  readonly bypassHeader?: string;
  /** Default `flotilla_bypass`. */
  readonly bypassCookie?: string;
}

/**
 * Whether a tenant may be served now: active and not under maintenance (its
 * own or the fleet's, unless the request carries the bypass secret). Otherwise
 * the typed error its answer comes from: 503 with Retry-After while it is
 * provisioning, upgrading, restoring or under maintenance, 403 suspended, 410 archived.
 */
export function admit(tenant: DirectoryTenant, fleet: Maintenance | null, bypass: boolean, retryAfter: number): void {
  const slug = tenant.slug;
  switch (tenant.status) {
    case 'active':
      break;
    case 'suspended':
      throw new FlotillaError('FLO_TENANT_SUSPENDED', `Tenant ${slug} is suspended.`, {
        hint: 'Its operator suspended it; it answers again once reactivated.',
        meta: { tenant: slug },
      });
    case 'archived':
      throw new FlotillaError('FLO_TENANT_ARCHIVED', `Tenant ${slug} is archived.`, { hint: 'Its data is no longer served.', meta: { tenant: slug } });
    default:
      throw new FlotillaError('FLO_TENANT_UNAVAILABLE', `Tenant ${slug} is ${tenant.status}: try again in ${retryAfter} s.`, {
        hint: 'Its database is being changed; it answers again when that is done.',
        meta: { tenant: slug, reason: tenant.status, retryAfter },
      });
  }
  const maintenance = tenant.maintenance ?? fleet;
  if (maintenance && !bypass) {
    throw new FlotillaError('FLO_TENANT_UNAVAILABLE', maintenance.message ?? `Tenant ${slug} is down for maintenance: try again in ${maintenance.retryAfter} s.`, {
      hint: 'It is under maintenance (flotilla tenant up lifts it).',
      meta: { tenant: slug, reason: 'maintenance', retryAfter: maintenance.retryAfter },
    });
  }
}

/** The request carries the maintenance bypass secret, in its header or its cookie. */
export function bypasses(request: RequestInfo | undefined, options: MaintenanceOptions): boolean {
  const secret = options.bypassSecret;
  if (!secret || !request) return false;
  const header = request.header((options.bypassHeader ?? 'x-flotilla-bypass').toLowerCase());
  if (header !== undefined && same(header, secret)) return true;
  const cookies = request.header('cookie');
  if (!cookies) return false;
  const name = options.bypassCookie ?? 'flotilla_bypass';
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name && same(safeDecode(part.slice(eq + 1).trim()), secret)) return true;
  }
  return false;
}

function same(given: string, secret: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(secret).digest();
  return timingSafeEqual(a, b);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
