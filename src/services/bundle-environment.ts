import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes } from '../core/bytes.js';
import { FlotillaError } from '../core/errors.js';
import type { Server, Tenant } from '../core/tenant.js';
import { MAIN_SERVER } from '../core/tenant.js';
import { withClient } from '../postgres/connect.js';
import { requireTool, serverVersion, toolVersion } from '../postgres/pg-tools.js';
import { adminDatabase } from '../postgres/server-url.js';
import { tenancyModel } from '../tenancy/models.js';
import type { ApplyReport } from './bundle-report.js';

/**
 * What an apply needs before it touches anything: every server reachable (its
 * version recorded), pg_dump and pg_restore present and not older than any
 * server, and room on disk for a backup of every tenant. A failed check throws,
 * with a message for the site's administrator.
 */
export async function checkEnvironment(tenants: readonly Tenant[], servers: ReadonlyMap<string, Server>, backupDir: string): Promise<ApplyReport['environment']> {
  const used = [...new Set([MAIN_SERVER, ...tenants.map((t) => t.server)])].flatMap((name) => servers.get(name) ?? []);
  const versions: { name: string; postgres: string }[] = [];
  for (const server of used) {
    const { major, version } = await withClient(server.url, adminDatabase(server.url), serverVersion);
    requireTool('pg_dump', major);
    requireTool('pg_restore', major);
    versions.push({ name: server.name, postgres: version });
  }
  const pgDump = toolVersion('pg_dump') ?? 'unknown';
  let needed = 0;
  for (const kind of new Set(tenants.map((t) => t.kind))) {
    const sizes = await tenancyModel(kind).sizes(
      tenants.filter((t) => t.kind === kind),
      servers,
    );
    for (const size of sizes.values()) needed += size;
  }
  const free = await freeBytes(backupDir);
  if (free < needed) {
    throw new FlotillaError(
      'FLO_DISK_SPACE',
      `There is not enough free disk space for the backups: ${formatBytes(free)} free where they go, about ${formatBytes(needed)} needed.`,
      {
        hint: `Free some space on the disk holding ${backupDir} (or set backup.dir in flotilla.config.json to a disk with room), then apply the bundle again. Nothing was changed.`,
        meta: { dir: backupDir, free, needed },
      },
    );
  }
  return { servers: versions, pgDump, freeBytes: free, neededBytes: needed };
}

/** Bytes available to this user on the disk that holds `dir` (or its nearest existing parent). */
async function freeBytes(dir: string): Promise<number> {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stats = await statfs(existing);
  return stats.bavail * stats.bsize;
}
