/**
 * The control plane as tests (and benches) set it up or read it where the
 * public API has no call for it: states an older Flotilla, a killed process or
 * an operator left behind, and secrets the API never shows. Everything else
 * goes through Flotilla's public services (`tenants`, `audit`, `backups`, …).
 *
 * Each helper is one step on the control database, on the Flotilla's own
 * connection pool. The registry is Flotilla's private state: it is reached
 * here, and only here.
 */
import type { AuditEventInput } from '../../src/control/audit-log.js';
import type { Backup } from '../../src/control/backup-catalog.js';
import type { Registry } from '../../src/control/registry.js';
import type { StorageClaim, StorageOwner, StorageRef } from '../../src/control/storage.js';
import type { Server, Tenant, TenantKind, TenantStatus } from '../../src/core/tenant.js';
import type { Flotilla } from '../../src/flotilla.js';

function registryOf(flotilla: Flotilla): Registry {
  const registry = (flotilla as unknown as { context?: { registry?: Registry } }).context?.registry;
  if (!registry) throw new Error('test support: this Flotilla has no control plane context (its internals changed: update test/support/control.ts)');
  return registry;
}

/** A registered server with its connection URL and password (the API shows servers without it). */
export function serverWithSecret(flotilla: Flotilla, name: string): Promise<Server> {
  return registryOf(flotilla).getServer(name);
}

/** Registers a tenant `provisioning`, with nothing made for it: as an older version or a killed create left it. */
export function insertTenantRow(
  flotilla: Flotilla,
  input: { slug: string; name: string; kind: TenantKind; server: string; database: string; schema: string; operationId: string | null },
): Promise<Tenant> {
  return registryOf(flotilla).insertTenant(input);
}

/** Makes a registered tenant `active`, no longer owned by the operation that made it. */
export function activateTenantRow(flotilla: Flotilla, slug: string): Promise<void> {
  return registryOf(flotilla).activate(slug);
}

/** Sets a tenant's status directly, as an operator's SQL (or a command that has no API call yet) would. */
export function setTenantStatus(flotilla: Flotilla, slug: string, status: TenantStatus): Promise<void> {
  return registryOf(flotilla).setStatus(slug, status);
}

/** Removes a tenant's row, and nothing it owns. */
export function deleteTenantRow(flotilla: Flotilla, slug: string): Promise<void> {
  return registryOf(flotilla).deleteTenant(slug);
}

/** Claims a storage name for an owner in the registry's claims. */
export function claimStorage(flotilla: Flotilla, ref: StorageRef, owner: StorageOwner): Promise<StorageClaim> {
  return registryOf(flotilla).storage.claim(ref, owner);
}

/** Adds a row to the backup catalog (a forged or copied backup), with no file or snapshot behind it. */
export function insertBackupRow(flotilla: Flotilla, backup: Omit<Backup, 'createdAt'>): Promise<Backup> {
  return registryOf(flotilla).backups.insert(backup);
}

/** Removes a row from the backup catalog, and nothing it points to. */
export function deleteBackupRow(flotilla: Flotilla, id: string): Promise<void> {
  return registryOf(flotilla).backups.delete(id);
}

/** Appends an event to the audit trail, as a command would record it. */
export function recordAuditEvent(flotilla: Flotilla, event: AuditEventInput): Promise<void> {
  return registryOf(flotilla).audit.record(event);
}

/** Sets a server's limit on migrations at once (null: its default). */
export function setServerLimit(flotilla: Flotilla, name: string, limit: number | null): Promise<void> {
  return registryOf(flotilla).setServerLimit(name, limit);
}
