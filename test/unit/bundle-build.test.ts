import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { packArchive, readArchive } from '../../src/core/bundle/archive.js';
import { parseManifest } from '../../src/core/bundle/manifest.js';
import { publicKeyFrom } from '../../src/core/bundle/signing.js';
import { verifyBundle } from '../../src/core/bundle/verify.js';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile } from '../../src/core/sum-file.js';
import { buildBundle } from '../../src/services/bundle-build.js';
import { generateKeyFiles, verifyBundleFile } from '../../src/services/bundle-files.js';
import { installFolder } from '../../src/services/bundle-payload.js';

let dir: string;
let keys: Awaited<ReturnType<typeof generateKeyFiles>>;
const CREATED = new Date('2026-11-01T00:00:00Z');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-bundle-build-'));
  await mkdir(join(dir, 'migrations'));
  await writeFile(join(dir, 'migrations', '0001_members.sql'), 'CREATE TABLE members (id bigint PRIMARY KEY);\n');
  await writeFile(join(dir, 'migrations', '0001_members.verify.sql'), 'SELECT count(*) = 0 FROM members;\n');
  await writeFile(join(dir, 'migrations', 'README.md'), 'notes, not shipped\n');
  await writeFile(join(dir, 'migrations', 'flotilla.sum'), renderSumFile(await readMigrationDir(join(dir, 'migrations'))));
  await mkdir(join(dir, 'app', 'bin'), { recursive: true });
  await writeFile(join(dir, 'app', 'server.js'), 'console.log(1);\n');
  await writeFile(join(dir, 'app', 'bin', 'start'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', bundles: { product: 'insure' } }));
  keys = await generateKeyFiles(join(dir, 'keys'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const config = () => loadConfig({ cwd: dir, env: {} });
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('signing keys', () => {
  it('are written owner-only for the private key, and never overwritten', async () => {
    expect((await stat(keys.privateKey)).mode & 0o777).toBe(0o600);
    expect((await stat(keys.publicKey)).mode & 0o777).toBe(0o644);
    const before = await readFile(keys.privateKey);
    await expect(generateKeyFiles(join(dir, 'keys'))).rejects.toMatchObject({ code: 'FLO_KEY_EXISTS' });
    expect(await readFile(keys.privateKey)).toEqual(before);
    // The public key alone is there: still refused, and no private key is written beside it.
    await mkdir(join(dir, 'half'));
    await writeFile(join(dir, 'half', 'flotilla-signing.pub'), 'x');
    await expect(generateKeyFiles(join(dir, 'half'))).rejects.toMatchObject({ code: 'FLO_KEY_EXISTS' });
    await expect(stat(join(dir, 'half', 'flotilla-signing.key'))).rejects.toThrow();
  });

  it('refuse a private key where the public one is asked for', async () => {
    expect(() => publicKeyFrom(readFileSync(keys.privateKey, 'utf8'), 'flotilla-signing.key')).toThrow(expect.objectContaining({ code: 'FLO_KEY_INVALID' }));
  });
});

describe('bundle build', () => {
  it('gives the same bytes for the same files and creation time, and other bytes for another time', async () => {
    const options = { version: '1.2.0', key: keys.privateKey, app: join(dir, 'app'), createdAt: CREATED, cwd: dir };
    const one = await buildBundle(await config(), { ...options, out: join(dir, 'one.tgz') });
    const two = await buildBundle(await config(), { ...options, out: join(dir, 'two.tgz') });
    expect(await readFile(one.file)).toEqual(await readFile(two.file));
    expect(one.digest).toBe(sha(await readFile(one.file)));
    const later = await buildBundle(await config(), { ...options, createdAt: new Date('2026-11-02T00:00:00Z'), out: join(dir, 'later.tgz') });
    expect(later.digest).not.toBe(one.digest);
    // SOURCE_DATE_EPOCH stands for the creation time when none is given.
    process.env.SOURCE_DATE_EPOCH = String(CREATED.getTime() / 1000);
    try {
      const fromEnv = await buildBundle(await config(), { ...options, createdAt: undefined, out: join(dir, 'env.tgz') });
      expect(fromEnv.digest).toBe(one.digest);
    } finally {
      delete process.env.SOURCE_DATE_EPOCH;
    }
  });

  it('packs the migrations, their verify files, flotilla.sum and the app, each listed with its SHA-256', async () => {
    const built = await buildBundle(await config(), {
      version: '1.2.0',
      minFrom: '1.0.0',
      expires: '90d',
      key: keys.privateKey,
      app: join(dir, 'app'),
      createdAt: CREATED,
      out: join(dir, 'listed.tgz'),
      cwd: dir,
    });
    const files = await readArchive(await readFile(built.file));
    expect([...files.keys()].sort()).toEqual([
      'app/bin/start',
      'app/server.js',
      'manifest.json',
      'manifest.sig',
      'migrations/0001_members.sql',
      'migrations/0001_members.verify.sql',
      'migrations/flotilla.sum',
    ]);
    const manifest = parseManifest(files.get('manifest.json')!)!;
    expect(manifest).toMatchObject({
      product: 'insure',
      version: '1.2.0',
      minFrom: '1.0.0',
      createdAt: CREATED.toISOString(),
      expiresAt: '2027-01-30T00:00:00.000Z',
      keyId: keys.keyId,
      app: true,
    });
    expect(manifest.migrations).toEqual({ newest: '0001', count: 1 });
    for (const file of manifest.files) expect(file.sha256).toBe(sha(files.get(file.path)!));
    expect(manifest.files.filter((f) => f.executable).map((f) => f.path)).toEqual(['app/bin/start']);
    // And the site's check accepts it, with the vendor's public key.
    const verified = await verifyBundle(await readFile(built.file), publicKeyFrom(await readFile(keys.publicKey, 'utf8'), 'pub'), { flotillaVersion: '0.1.0', now: CREATED });
    expect(verified.manifest.version).toBe('1.2.0');
    await expect(
      verifyBundle(await readFile(built.file), publicKeyFrom(await readFile(keys.publicKey, 'utf8'), 'pub'), { flotillaVersion: '0.1.0', now: new Date('2027-02-01T00:00:00Z') }),
    ).rejects.toMatchObject({ code: 'FLO_BUNDLE_EXPIRED' });
  });

  it('refuses bad input with a usage error and writes nothing', async () => {
    const base = { key: keys.privateKey, createdAt: CREATED, cwd: dir, out: join(dir, 'refused.tgz') };
    await expect(buildBundle(await config(), { ...base, version: 'v2' })).rejects.toMatchObject({ code: 'FLO_USAGE' });
    await expect(buildBundle(await config(), { ...base, version: '1.0.0', minFrom: '2.0.0' })).rejects.toMatchObject({ code: 'FLO_USAGE' });
    await expect(buildBundle(await config(), { ...base, version: '1.0.0', expires: 'soon' })).rejects.toMatchObject({ code: 'FLO_USAGE' });
    await expect(buildBundle(await config(), { ...base, version: '1.0.0', key: keys.publicKey })).rejects.toMatchObject({ code: 'FLO_KEY_INVALID' });
    await mkdir(join(dir, 'linked'));
    await symlink('/etc/hostname', join(dir, 'linked', 'hostname'));
    await expect(buildBundle(await config(), { ...base, version: '1.0.0', app: join(dir, 'linked') })).rejects.toMatchObject({ code: 'FLO_USAGE' });
    await expect(stat(base.out)).rejects.toThrow();
  });

  it('refuses migrations without flotilla.sum', async () => {
    const bare = await mkdtemp(join(tmpdir(), 'flotilla-bundle-bare-'));
    try {
      await mkdir(join(bare, 'migrations'));
      await writeFile(join(bare, 'migrations', '0001_a.sql'), 'CREATE TABLE a (id int);\n');
      const cfg = await loadConfig({ cwd: bare, env: {} });
      await expect(buildBundle(cfg, { version: '1.0.0', key: keys.privateKey, cwd: bare })).rejects.toMatchObject({
        code: 'FLO_USAGE',
        message: expect.stringContaining('flotilla.sum'),
      });
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });
});

describe('installing a folder of a bundle', () => {
  it('swaps the new folder in whole, keeps the one it replaces, and sets executables', async () => {
    const target = join(dir, 'site', 'app');
    const files = new Map([
      ['app/server.js', Buffer.from('v1')],
      ['migrations/0001_a.sql', Buffer.from('not this folder')],
    ]);
    expect(await installFolder(files, 'app', target)).toEqual({ files: 1, previous: null });
    const next = new Map([
      ['app/server.js', Buffer.from('v2')],
      ['app/bin/start', Buffer.from('#!/bin/sh')],
    ]);
    const second = await installFolder(next, 'app', target, new Set(['app/bin/start']));
    expect(second.files).toBe(2);
    expect(await readFile(join(target, 'server.js'), 'utf8')).toBe('v2');
    expect((await stat(join(target, 'bin', 'start'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(target, 'server.js'))).mode & 0o777).toBe(0o644);
    expect((await stat(target)).mode & 0o777).toBe(0o755);
    expect(await readFile(join(second.previous!, 'server.js'), 'utf8')).toBe('v1');
    // Nothing half-written is left beside it, and only the last folder replaced is kept.
    expect((await readdir(join(dir, 'site'))).filter((n) => n.includes('incoming'))).toEqual([]);
    const third = await installFolder(files, 'app', target);
    expect((await readdir(join(dir, 'site'))).filter((n) => n.includes('previous')).map((n) => join(dir, 'site', n))).toEqual([third.previous]);
  });
});

describe('unpacking a bundle', () => {
  const limits = { maxUnpackedBytes: 2 * 1024 ** 2, maxFiles: 100 };

  it('counts what it unpacks: files each under the bound but over it together are refused', async () => {
    const files = [1, 2, 3].map((n) => ({ path: `app/part-${n}.bin`, bytes: Buffer.alloc(1024 ** 2, n) }));
    const archive = await packArchive(files, CREATED);
    await expect(readArchive(archive, limits)).rejects.toMatchObject({ code: 'FLO_BUNDLE_TOO_LARGE', message: expect.stringContaining('once unpacked') });
    expect((await readArchive(archive, { ...limits, maxUnpackedBytes: 4 * 1024 ** 2 })).size).toBe(3);
  });

  it('refuses a bundle file larger than the bound before reading it', async () => {
    const built = await buildBundle(await config(), { version: '1.2.0', key: keys.privateKey, createdAt: CREATED, out: join(dir, 'sized.tgz'), cwd: dir });
    const small = { bundles: { ...(await config()).bundles, maxUnpackedBytes: built.sizeBytes - 1 } };
    await expect(verifyBundleFile(built.file, keys.publicKey, small)).rejects.toMatchObject({ code: 'FLO_BUNDLE_TOO_LARGE', message: expect.stringContaining('compressed') });
    expect((await verifyBundleFile(built.file, keys.publicKey, await config())).digest).toBe(built.digest);
  });

  it('counts what follows the end of the archive too', async () => {
    const archive = await packArchive([{ path: 'app/a.txt', bytes: Buffer.from('a') }], CREATED);
    // Another gzip member of 16 MiB of zeros after the archive's own: small on disk, large unpacked.
    const padded = Buffer.concat([archive, gzipSync(Buffer.alloc(16 * 1024 ** 2))]);
    expect(padded.length).toBeLessThan(64 * 1024);
    await expect(readArchive(padded, limits)).rejects.toMatchObject({ code: 'FLO_BUNDLE_TOO_LARGE', message: expect.stringContaining('once unpacked') });
  });

  it('refuses a file whose header declares more than the bound, before unpacking it', async () => {
    const archive = await packArchive([{ path: 'app/big.bin', bytes: Buffer.alloc(3 * 1024 ** 2) }], CREATED);
    await expect(readArchive(archive, { ...limits, maxUnpackedBytes: 2 * 1024 ** 2 + 1024 })).rejects.toMatchObject({
      code: 'FLO_BUNDLE_TOO_LARGE',
      message: expect.stringContaining('a file of 3.0 MiB'),
    });
  });
});
