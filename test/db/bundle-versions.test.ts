import { spawnSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedConfig } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/config.js';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile } from '../../src/core/sum-file.js';
import { Flotilla } from '../../src/flotilla.js';
import { buildBundle } from '../../src/services/bundle-build.js';
import { generateKeyFiles, verifyBundleFile } from '../../src/services/bundle-files.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

/**
 * Which bundles a site accepts, in process on the test server: a database
 * tenant and a schema tenant, releases built by a vendor project beside it.
 */
let project: TestProject;
let vendor: string;
let site: ResolvedConfig;
let keys: Awaited<ReturnType<typeof generateKeyFiles>>;
let siteKeys: Awaited<ReturnType<typeof generateKeyFiles>>;
/** The vendor's new key, announced and accepted at 2.2.0. */
let rotated: Awaited<ReturnType<typeof generateKeyFiles>>;
let flotilla: Flotilla;

const V1 = { '0001_members.sql': 'CREATE TABLE members (id bigint PRIMARY KEY, name text NOT NULL);\n' };
const V2 = { ...V1, '0002_members_email.sql': 'ALTER TABLE members ADD COLUMN email text;\n' };

async function writeMigrations(dir: string, files: Record<string, string>): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  await writeFile(join(dir, 'flotilla.sum'), renderSumFile(await readMigrationDir(dir)));
}

/** Builds a release in the vendor's project and reads it as a site would (verified). */
async function release(version: string, files: Record<string, string>, options: { minFrom?: string; product?: string; keys?: typeof keys } = {}) {
  const signer = options.keys ?? keys;
  await writeMigrations(join(vendor, 'migrations'), files);
  const config = await loadConfig({ cwd: vendor, env: {}, overrides: { bundles: { product: options.product ?? 'insure' } } });
  const built = await buildBundle(config, { version, key: signer.privateKey, minFrom: options.minFrom, out: join(vendor, `${version}.tgz`), cwd: vendor });
  return verifyBundleFile(built.file, signer.publicKey, site);
}

beforeAll(async () => {
  project = await testProject();
  vendor = await mkdtemp(join(tmpdir(), 'flotilla-vendor-'));
  keys = await generateKeyFiles(join(vendor, 'keys'));
  // The site's own key, where bundles.siteKey points: its reports are signed.
  siteKeys = await generateKeyFiles(join(project.dir, '.flotilla', 'site-keys'));
  await project.write(V1);
  await writeFile(join(project.migrationsDir, 'flotilla.sum'), renderSumFile(await readMigrationDir(project.migrationsDir)));
  site = await loadConfig({
    cwd: project.dir,
    env: { FLOTILLA_DATABASE_URL: project.env.FLOTILLA_DATABASE_URL },
    overrides: { bundles: { product: 'insure' } },
  });
  flotilla = await Flotilla.open({ config: site });
  await flotilla.tenants.create({ slug: 'hq', kind: 'database' });
  await flotilla.tenants.create({ slug: 'annex', kind: 'schema' });
  await project.query(`${project.prefix}_hq`, `INSERT INTO members SELECT g, 'm' || g FROM generate_series(1, 250) g`);
}, 60_000);
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
  if (vendor) await rm(vendor, { recursive: true, force: true });
});

describe('bundle apply at a site', () => {
  it('installs a release whose migrations the tenants already hold, and signs its report with the site key', async () => {
    const { report, files } = await flotilla.bundles.apply(await release('1.0.0', V1));
    expect(report.outcome).toBe('installed');
    expect(report.tenants.map((t) => [t.tenant, t.kind, t.status, t.versionAfter, t.rowsIntact])).toEqual([
      ['annex', 'schema', 'unchanged', '0001', true],
      ['hq', 'database', 'unchanged', '0001', true],
    ]);
    expect(files.signedBy).toBe(siteKeys.keyId);
    const json = await readFile(files.json);
    expect(verify(null, json, createPublicKey(await readFile(siteKeys.publicKey, 'utf8')), await readFile(files.signature!))).toBe(true);
    // As the vendor's support checks it, with OpenSSL alone (the README's command).
    const openssl = (input: string) =>
      spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', siteKeys.publicKey, '-rawin', '-in', input, '-sigfile', files.signature!], { encoding: 'utf8' });
    expect(openssl(files.json).stdout).toContain('Signature Verified Successfully');
    await writeFile(join(project.dir, 'edited.json'), json.toString().replace('"installed"', '"failed"'));
    expect(openssl(join(project.dir, 'edited.json')).status).not.toBe(0);
    expect(JSON.parse(json.toString()).version).toBe('1.0.0');
  });

  it('refuses a release that needs a newer installed version, and one of another product, recording nothing', async () => {
    await expect(flotilla.bundles.apply(await release('3.0.0', V2, { minFrom: '2.0.0' }))).rejects.toMatchObject({ code: 'FLO_BUNDLE_TOO_NEW' });
    await expect(flotilla.bundles.apply(await release('9.0.0', V2, { product: 'other' }))).rejects.toMatchObject({ code: 'FLO_BUNDLE_OTHER_PRODUCT' });
    // Only what verification returned is applied: a look-alike object (its files swapped after the check, say) is not.
    const genuine = await release('2.0.0', V2);
    await expect(flotilla.bundles.apply({ ...genuine, files: new Map(genuine.files) })).rejects.toMatchObject({ code: 'FLO_USAGE' });
    expect((await flotilla.bundles.history()).map((i) => [i.version, i.outcome])).toEqual([['1.0.0', 'installed']]);
    expect(await flotilla.backups.list()).toHaveLength(2);
  });

  it('upgrades both kinds of tenant with their rows intact, then refuses the same and an older release', async () => {
    const { report } = await flotilla.bundles.apply(await release('2.0.0', V2, { minFrom: '1.0.0' }));
    expect(report.previousVersion).toBe('1.0.0');
    expect(report.tenants.map((t) => [t.tenant, t.status, t.versionBefore, t.versionAfter, t.rowsIntact])).toEqual([
      ['annex', 'upgraded', '0001', '0002', true],
      ['hq', 'upgraded', '0001', '0002', true],
    ]);
    const hq = report.tenants.find((t) => t.tenant === 'hq')!;
    expect(hq.rowsAfter).toBeGreaterThanOrEqual(hq.rowsBefore! + 0);
    expect(hq.restoreCommand).toBe(`flotilla restore hq --backup ${hq.backupId}`);
    expect(await project.query(`${project.prefix}_hq`, 'SELECT count(*)::int AS n, count(email)::int AS e FROM members')).toEqual([{ n: 250, e: 0 }]);
    // The site's migrations are the release's now: status agrees with the tenants.
    expect((await readMigrationDir(site.migrationsDir)).map((m) => m.id)).toEqual(['0001_members', '0002_members_email']);
    expect((await flotilla.status.fleet()).map((t) => [t.slug, t.version, t.pending])).toEqual([
      ['annex', '0002', 0],
      ['hq', '0002', 0],
    ]);
    const backups = (await flotilla.backups.list()).length;
    await expect(flotilla.bundles.apply(await release('2.0.0', V2))).rejects.toMatchObject({ code: 'FLO_BUNDLE_INSTALLED' });
    await expect(flotilla.bundles.apply(await release('1.5.0', V2))).rejects.toMatchObject({ code: 'FLO_BUNDLE_OLDER' });
    expect((await flotilla.backups.list()).length).toBe(backups);
    expect((await flotilla.bundles.history()).map((i) => i.version)).toEqual(['1.0.0', '2.0.0']);
  });

  it('applies one bundle at a time at a site', async () => {
    const bundle = await release('2.1.0', V2);
    const [first, second] = await Promise.allSettled([flotilla.bundles.apply(bundle), flotilla.bundles.apply(bundle)]);
    const outcomes = [first, second].map((r) => (r.status === 'fulfilled' ? r.value.report.outcome : (r.reason as { code: string }).code)).sort();
    expect(outcomes).toEqual(['FLO_BUNDLE_IN_PROGRESS', 'installed']);
    expect((await flotilla.bundles.history()).map((i) => [i.version, i.outcome])).toEqual([
      ['1.0.0', 'installed'],
      ['2.0.0', 'installed'],
      ['2.1.0', 'installed'],
    ]);
  });

  it('keeps to the product and the signing key of the releases installed so far', async () => {
    // A site that names no product runs the one its first release was for.
    const unnamed = await Flotilla.open({ config: { ...site, bundles: { ...site.bundles, product: undefined } } });
    try {
      await expect(unnamed.bundles.apply(await release('9.0.0', V2, { product: 'shop-legacy' }))).rejects.toMatchObject({ code: 'FLO_BUNDLE_OTHER_PRODUCT' });
    } finally {
      await unnamed.close();
    }
    rotated = await generateKeyFiles(join(vendor, 'new-keys'));
    const bundle = await release('2.2.0', V2, { keys: rotated });
    await expect(flotilla.bundles.apply(bundle)).rejects.toMatchObject({ code: 'FLO_BUNDLE_WRONG_KEY' });
    expect((await flotilla.bundles.history()).at(-1)!.version).toBe('2.1.0');
    // The administrator accepts the vendor's announced new key.
    expect((await flotilla.bundles.apply(bundle, { allowNewKey: true })).report.outcome).toBe('installed');
  });

  it('refuses, before any backup, an application folder that would hold the site itself', async () => {
    const backups = (await flotilla.backups.list()).length;
    for (const appDir of [project.dir, join(project.dir, '..'), site.migrationsDir, join(project.dir, '.flotilla'), join(project.dir, 'flotilla.config.json', 'app')]) {
      const careless = await Flotilla.open({ config: { ...site, bundles: { ...site.bundles, appDir } } });
      try {
        await expect(careless.bundles.apply(await release('3.0.0', V2, { keys: rotated }))).rejects.toMatchObject({ code: 'FLO_CONFIG_INVALID' });
      } finally {
        await careless.close();
      }
    }
    expect((await flotilla.backups.list()).length).toBe(backups);
    expect((await flotilla.bundles.history()).at(-1)!.version).toBe('2.2.0');
  });

  it('refuses, before any backup, a release that changed a migration the tenants applied', async () => {
    const backups = (await flotilla.backups.list()).length;
    const changed = { ...V2, '0001_members.sql': 'CREATE TABLE members (id bigint PRIMARY KEY, name text);\n' };
    await expect(flotilla.bundles.apply(await release('3.0.0', changed, { keys: rotated }))).rejects.toMatchObject({
      code: 'FLO_BUNDLE_MISMATCH',
      message: expect.stringMatching(/^This release does not fit tenant annex: .*0001_members/),
    });
    expect((await flotilla.backups.list()).length).toBe(backups);
    expect((await flotilla.bundles.history()).at(-1)!.version).toBe('2.2.0');
  });

  it('keeps the record of applies append-only', async () => {
    await expect(project.query(`${project.prefix}_control`, 'DELETE FROM flotilla.bundle_installs')).rejects.toThrow(/append-only/);
    await expect(project.query(`${project.prefix}_control`, "UPDATE flotilla.bundle_installs SET version = '9.9.9'")).rejects.toThrow(/append-only/);
  });
});
