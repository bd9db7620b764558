import { access, rm } from 'node:fs/promises';
import { FlotillaError } from '../core/errors.js';
import { withClient } from '../postgres/connect.js';
import {
  createDatabase,
  createSchema,
  databaseExists,
  dropDatabase,
  dropSchemas,
  endCreation,
  ensureDatabase,
  holdsOnlyTenantSchemas,
  renameDatabase,
  renameSchema,
  schemaExists,
} from '../postgres/provision.js';
import { adminDatabase } from '../postgres/server-url.js';
import { giveSchemaTo, createTenantRole, dropTenantRole, roleExists } from '../postgres/tenant-role.js';
import { hostTag } from '../postgres/process-tag.js';
import type { StorageClaim, StorageOwner, StorageRef, StorageRegistry } from '../control/storage.js';
import { describeRef } from '../control/storage.js';

/** The connection URL of a registered server, by name. */
export type ServerUrls = (server: string) => Promise<string>;

/**
 * The only way Flotilla makes, renames or removes a database, a schema or a file
 * of a tenant: each step is claimed in the registry first, and a name is claimed
 * only while nothing exists under it. So nothing is ever dropped, renamed or
 * restored over that Flotilla did not make for that owner.
 */
export class OwnedStorage {
  constructor(
    readonly claims: StorageRegistry,
    private readonly urls: ServerUrls,
  ) {}

  /** A registered server's connection URL. */
  serverUrl(server: string): Promise<string> {
    return this.urls(server);
  }

  /** Whether the object exists (in the catalog, or on disk). */
  async exists(ref: StorageRef): Promise<boolean> {
    if (ref.kind === 'file') {
      return access(ref.name).then(
        () => true,
        () =>
          access(`${ref.name}.partial`).then(
            () => true,
            () => false,
          ),
      );
    }
    const url = await this.urls(ref.server);
    if (ref.kind === 'database') return withClient(url, adminDatabase(url), (admin) => databaseExists(admin, ref.name));
    if (ref.kind === 'schema') {
      return withClient(url, ref.database!, (client) => schemaExists(client, ref.name)).catch((error: FlotillaError) => {
        if ((error.cause as { code?: string } | undefined)?.code === '3D000') return false;
        throw error;
      });
    }
    return withClient(url, adminDatabase(url), (admin) => roleExists(admin, ref.name));
  }

  /** Makes a schema tenant's role under a claim (refused when a role of that name exists that Flotilla did not make for it). */
  async createRole(ref: StorageRef & { kind: 'role'; database: string }, owner: StorageOwner, options: { giveSchema?: string } = {}): Promise<StorageClaim> {
    const url = await this.urls(ref.server);
    // One session for the check, the role and the schema it is given.
    return withClient(url, ref.database, async (client) => {
      const claimed = await this.claims.find(ref);
      const exists = await roleExists(client, ref.name);
      if (!claimed && exists) throw notFlotillas(ref);
      const claim = await this.claims.claim(ref, owner);
      if (!exists) await createTenantRole(client, ref.name);
      if (options.giveSchema) await giveSchemaTo(client, options.giveSchema, ref.name);
      return claim;
    });
  }

  /**
   * Claims a name on which something will be made (by a migration, pg_restore, a
   * rename): refused when anything already exists there that this owner has not
   * claimed, or when someone else claims it.
   */
  async claimAbsent(ref: StorageRef, owner: StorageOwner): Promise<StorageClaim> {
    const existing = await this.claims.find(ref);
    if (existing) return this.claims.claim(ref, owner);
    if (await this.exists(ref)) throw notFlotillas(ref);
    return this.claims.claim(ref, owner);
  }

  /** Creates a database under a new claim (from a template: a snapshot or its copy). */
  async createDatabase(ref: StorageRef & { kind: 'database' }, owner: StorageOwner, template?: string): Promise<StorageClaim> {
    const claim = await this.claimAbsent(ref, owner);
    const url = await this.urls(ref.server);
    try {
      await withClient(url, adminDatabase(url), (admin) => createDatabase(admin, ref.name, template));
    } catch (error) {
      // Made by someone else between the check and now: theirs, not ours.
      await this.claims.release([claim.id]);
      if ((error as { code?: string }).code === '42P04') throw notFlotillas(ref);
      throw error;
    }
    return claim;
  }

  async createSchema(ref: StorageRef & { kind: 'schema' }, owner: StorageOwner): Promise<StorageClaim> {
    const claim = await this.claimAbsent(ref, owner);
    const url = await this.urls(ref.server);
    try {
      await withClient(url, ref.database!, (client) => createSchema(client, ref.name));
    } catch (error) {
      await this.claims.release([claim.id]);
      if ((error as { code?: string }).code === '42P06') throw notFlotillas(ref);
      throw error;
    }
    return claim;
  }

  /**
   * The shared database of schema tenants: claimed for that purpose and made if
   * missing. An existing database of that name that Flotilla did not make is refused.
   */
  async ensureSharedDatabase(server: string, name: string): Promise<void> {
    const ref = { server, kind: 'database', name } as const;
    const claim = await this.claims.find(ref);
    const url = await this.urls(server);
    if (claim) {
      if (claim.purpose !== 'shared') await this.claims.claim(ref, { purpose: 'shared' });
    } else if (await this.exists(ref)) {
      // Made by an earlier version for schema tenants that are gone: taken as the shared database only
      // when it holds nothing but tenant schemas (empty, or with Flotilla's history table).
      const flotillas = await withClient(url, name, holdsOnlyTenantSchemas);
      if (!flotillas) throw notFlotillas(ref);
      await this.claims.claim(ref, { purpose: 'shared' });
    } else {
      await this.claims.claim(ref, { purpose: 'shared' });
    }
    await withClient(url, adminDatabase(url), (admin) => ensureDatabase(admin, name));
  }

  /** Removes the object a claim names (if it exists), then the claim. */
  async drop(claim: StorageClaim): Promise<void> {
    await this.removeObject(claim);
    await this.claims.release([claim.id]);
  }

  async removeObject(ref: StorageRef): Promise<void> {
    if (ref.kind === 'file') {
      // A dump is written under `.partial` and renamed when complete: either may be there.
      await rm(ref.name, { force: true });
      await rm(`${ref.name}.partial`, { force: true });
      return;
    }
    const url = await this.urls(ref.server);
    if (ref.kind === 'database') {
      await withClient(url, adminDatabase(url), async (admin) => {
        await endCreation(admin, ref.name);
        await dropDatabase(admin, ref.name);
      });
    } else if (ref.kind === 'schema') {
      await withClient(url, ref.database!, (client) => dropSchemas(client, [ref.name])).catch((error: FlotillaError) => {
        if ((error.cause as { code?: string } | undefined)?.code !== '3D000') throw error;
      });
    } else if (ref.kind === 'role') {
      // What it still holds in the tenant's database goes first; with that database gone, only the role is left.
      await withClient(url, ref.database!, (client) => dropTenantRole(client, ref.name)).catch(async (error: FlotillaError) => {
        if ((error.cause as { code?: string } | undefined)?.code !== '3D000') throw error;
        await withClient(url, adminDatabase(url), (admin) => dropTenantRole(admin, ref.name));
      });
    }
  }

  /** Renames an object (the caller holds claims on both names, so that, killed between, the catalog says which it has). */
  async renameObject(ref: StorageRef, to: string): Promise<void> {
    const url = await this.urls(ref.server);
    if (ref.kind === 'database') await withClient(url, adminDatabase(url), (admin) => renameDatabase(admin, ref.name, to));
    else if (ref.kind === 'schema') await withClient(url, ref.database!, (client) => renameSchema(client, ref.name, to));
    else throw new FlotillaError('FLO_INTERNAL', `Cannot rename ${describeRef(ref)}.`);
  }

  /** The claim on a name, which must be this tenant's own; otherwise nothing is done to it. */
  async requireTenants(ref: StorageRef, tenant: { id: string; slug: string }): Promise<StorageClaim> {
    const claim = await this.claims.find(ref);
    if (claim?.purpose === 'tenant' && claim.tenantId === tenant.id) return claim;
    throw new FlotillaError(
      'FLO_STORAGE_NOT_OWNED',
      `The registry does not record the ${describeRef(ref)} as tenant ${tenant.slug}'s${claim ? ` (it is registered as ${claim.purpose === 'tenant' ? "another tenant's" : `${claim.purpose} storage`})` : ''}: Flotilla will not change it.`,
      {
        hint: "Flotilla only drops, renames or restores over what it made for a tenant. If this storage is really the tenant's, restore the tenant into a new one (`flotilla restore <slug> --backup <id> --as <new-slug>`) and retire the old one by hand.",
        meta: { tenant: tenant.slug, kind: ref.kind, name: ref.name, server: ref.server, database: ref.database ?? null },
      },
    );
  }
}

/** A file on this machine's disk, as claimed: the machine is recorded with it. */
export function localFile(path: string): StorageRef & { kind: 'file' } {
  return { server: `host:${hostTag()}`, kind: 'file', name: path };
}

/** Something exists under a name Flotilla did not claim: someone else's, never reused or removed. */
export function notFlotillas(ref: StorageRef): FlotillaError {
  return new FlotillaError('FLO_STORAGE_TAKEN', `The ${describeRef(ref)} already exists and was not made by Flotilla for this: it will not be reused, overwritten or removed.`, {
    hint: 'It belongs to something else. Pick another slug, or change the tenant name prefix in the config; if it is a leftover of yours, inspect it and remove it by hand.',
    meta: { kind: ref.kind, name: ref.name, server: ref.server, database: ref.database ?? null },
  });
}
