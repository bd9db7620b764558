import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../support/cli.js';
import type { Site, SiteServer, SocketBridge } from '../support/sites.js';
import {
  createSite,
  S3_COUNTS,
  S3_FAILING_MIGRATION,
  S3_MIGRATIONS_V2,
  S3_V1_VERSION,
  S3_V2_VERSION,
  socketBridge,
  startSiteServers,
  stopSiteServers,
  writeMigrations,
} from '../support/sites.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let servers: SiteServer[] = [];
const sites: Site[] = [];
let bridge: SocketBridge | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-sites-'));
  let at = Date.now();
  servers = await startSiteServers(3, join(dir, 'servers'));
  const started = Date.now() - at;
  at = Date.now();
  // The third site's hq holds a claim without an amount: the failing migration fails there only.
  const created = await Promise.allSettled(servers.map((server, i) => createSite(server, `site-${i + 1}`, { nullClaimAmount: i === 2 })));
  for (const result of created) if (result.status === 'fulfilled') sites.push(result.value);
  for (const result of created) if (result.status === 'rejected') throw result.reason;
  console.log(`[sites] 3 servers started in ${started} ms, 3 sites created and seeded in ${Date.now() - at} ms`);
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  for (const site of sites) await site.cleanup();
  await stopSiteServers(servers);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `unshare -n <command>`: the command runs in a network namespace of its own, with no interface up. */
const offline = (command: string, args: string[]) => runProcess('unshare', ['-n', command, ...args], { cwd: ROOT });

describe('scenario S3 support: sites on servers of their own', () => {
  it('starts three servers on different ports, each site with its seeded tenants at release 1.0.0', async () => {
    expect(new Set(servers.map((s) => s.port)).size).toBe(3);
    for (const [i, site] of sites.entries()) {
      expect(new URL(site.env.FLOTILLA_DATABASE_URL!).port).toBe(String(servers[i]!.port));
      expect(site.tenants).toEqual(['hq', 'branch']);
      for (const slug of site.tenants) {
        expect({ site: site.name, slug, counts: await site.counts(slug), version: await site.version(slug) }).toEqual({
          site: site.name,
          slug,
          counts: S3_COUNTS[slug],
          version: S3_V1_VERSION,
        });
      }
    }
    expect(new Set(sites.flatMap((s) => Object.values(s.databases))).size).toBe(6);
  });

  it('reaches a server through the socket bridge: node-postgres, and pg_dump with no network at all', async () => {
    const site = sites[0]!;
    bridge = await socketBridge(site.server.port, join(dir, 'sock'));
    const url = bridge.url(site.databases.hq);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM claims')).rows[0].n).toBe(800);
    } finally {
      await client.end();
    }

    const unshare = await runProcess('unshare', ['-n', 'true'], { cwd: ROOT });
    expect(unshare.code, `\`unshare -n true\` failed (${unshare.stderr.trim()}): this test needs unprivileged network namespaces (root, or user namespaces enabled)`).toBe(0);
    const tcp = await offline(process.execPath, [
      '-e',
      `require('node:net').connect(${site.server.port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(3); })`,
    ]);
    expect(tcp.code, 'TCP to 127.0.0.1 must fail under unshare -n').toBe(3);
    const viaSocket = await offline(process.execPath, [
      '-e',
      `const c = new (require('pg').Client)({ connectionString: process.argv[1] }); c.connect().then(() => c.query('SELECT count(*)::int AS n FROM policies')).then((r) => { console.log(r.rows[0].n); return c.end(); }).catch((e) => { console.error(e.message); process.exit(1); })`,
      url,
    ]);
    expect(viaSocket).toMatchObject({ code: 0, stdout: '12000\n' });
    const dump = await offline('pg_dump', ['--schema-only', '--dbname', url]);
    expect(dump.stderr).toBe('');
    expect(dump.code).toBe(0);
    expect(dump.stdout).toContain('CREATE TABLE public.claims');
  });

  it('release 2.0.0 applies on every site; the failing migration fails only on the site whose hq has a claim without an amount', async () => {
    const results: Record<string, Record<string, string>> = {};
    for (const site of sites) {
      await writeMigrations(join(site.dir, 'migrations'), { ...S3_MIGRATIONS_V2, ...S3_FAILING_MIGRATION });
      const report = await site.withFlotilla((f) => f.upgrade.migrate({ all: true }));
      results[site.name] = Object.fromEntries(report.outcomes.map((o) => [o.tenant, o.status === 'failed' ? `failed: ${o.error.message}` : o.status]));
    }
    expect(results).toEqual({
      'site-1': { hq: 'succeeded', branch: 'succeeded' },
      'site-2': { hq: 'succeeded', branch: 'succeeded' },
      'site-3': { hq: expect.stringMatching(/^failed: .*column "amount" of relation "claims" contains null values/), branch: 'succeeded' },
    });
    // All or nothing: the failed tenant is still at release 1.0.0, with its rows.
    expect(await sites[2]!.version('hq')).toBe(S3_V1_VERSION);
    expect(await sites[2]!.counts('hq')).toEqual(S3_COUNTS.hq);
    expect(await sites[0]!.version('hq')).toBe('0006');
    expect(S3_V2_VERSION).toBe('0005');
  });
});
