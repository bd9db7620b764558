import { createPublicKey, randomBytes, verify as signatureHolds } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readArchive } from '../../src/core/bundle/archive.js';
import { verifyBundle } from '../../src/core/bundle/verify.js';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile } from '../../src/core/sum-file.js';
import { flotillaVersion } from '../../src/services/flotilla-version.js';
import type { CliResult } from '../support/cli.js';
import { runCli } from '../support/cli.js';
import type { Bomb, TarEntry } from '../support/hostile-bundles.js';
import {
  BOMB_BLOCK,
  BOMB_MEMBERS,
  decompressionBomb,
  entryBody,
  fileEntry,
  flipByte,
  linkEntry,
  listing,
  rawHeaders,
  repack,
  resign,
  sha256,
  TEN_GIB_OF_ZEROS_SHA256,
  unpack,
} from '../support/hostile-bundles.js';
import type { TestProject } from '../support/project.js';
import { databasesLike, testProject } from '../support/project.js';

/**
 * The product issue's hostile bundles, each refused by `bundle verify` and by
 * `bundle apply` with its own error code, and nothing changed: no tenant
 * touched, no backup taken, no install recorded, nothing written in the site
 * or next to it, nothing named after a hostile entry anywhere in the temp dir.
 */

const TAG = randomBytes(4).toString('hex');
const EVIL = `evil-${TAG}`;
const TENANTS = ['north', 'south'] as const;
const V1 = { '0001_items.sql': 'CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n' };
const V2 = { ...V1, '0002_items_price.sql': 'ALTER TABLE items ADD COLUMN price numeric(12,2);\n' };
const MIGRATION = 'migrations/0002_items_price.sql';
// Targets outside every directory Flotilla works in: none may exist afterwards.
const DOTDOT = `../${EVIL}.sql`;
const ABSOLUTE = join(tmpdir(), `${EVIL}-absolute.sql`);
const SYMLINK = { name: `app/${EVIL}-symlink`, target: join(tmpdir(), `${EVIL}-symlink-target`) };
const HARDLINK = { name: `app/${EVIL}-hardlink`, target: join(tmpdir(), `${EVIL}-hardlink-target`) };
const UNLISTED = `migrations/0003_${EVIL}.sql`;
const DROP = 'DROP TABLE items;\n';

/** Each case: its bundle's file name, the code expected, and for unsafe entries the entry named in the error. */
const CASES = [
  ['migration-byte-flipped', 'FLO_BUNDLE_FILE_CHANGED', undefined],
  ['manifest-byte-flipped', 'FLO_BUNDLE_SIGNATURE_INVALID', undefined],
  ['signature-byte-flipped', 'FLO_BUNDLE_SIGNATURE_INVALID', undefined],
  ['signed-by-another-key', 'FLO_BUNDLE_WRONG_KEY', undefined],
  ['expired', 'FLO_BUNDLE_EXPIRED', undefined],
  ['dotdot-entry', 'FLO_BUNDLE_UNSAFE_ENTRY', DOTDOT],
  ['absolute-entry', 'FLO_BUNDLE_UNSAFE_ENTRY', ABSOLUTE],
  ['symlink-entry', 'FLO_BUNDLE_UNSAFE_ENTRY', SYMLINK.name],
  ['hardlink-entry', 'FLO_BUNDLE_UNSAFE_ENTRY', HARDLINK.name],
  ['file-missing', 'FLO_BUNDLE_FILE_MISSING', undefined],
  ['file-unlisted', 'FLO_BUNDLE_FILE_UNLISTED', undefined],
  ['decompression-bomb', 'FLO_BUNDLE_TOO_LARGE', undefined],
] as const;
type CaseName = (typeof CASES)[number][0];

let vendor: string;
let inbox: string;
let project: TestProject;
let pubkey: string;
let vendorKeyPem: string;
let otherKeyPem: string;
let genuine: Buffer;
let genuineEntries: TarEntry[];
let bomb: Bomb;
let bombEntries: TarEntry[];
const hostile = new Map<CaseName, Buffer>();
const databases: Record<string, string> = {};
let tmpBefore: Set<string>;
let before: Awaited<ReturnType<typeof siteState>>;

const site = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });
const bundlePath = (name: string) => join(inbox, `${name}.flotilla.tgz`);

async function writeMigrations(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  await writeFile(join(dir, 'flotilla.sum'), renderSumFile(await readMigrationDir(dir)));
}

function ok(result: CliResult, what: string): CliResult {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}: ${result.stdout}${result.stderr}`);
  return result;
}

beforeAll(async () => {
  vendor = await mkdtemp(join(tmpdir(), 'flotilla-vendor-'));
  inbox = await mkdtemp(join(tmpdir(), 'flotilla-inbox-'));
  const { FLOTILLA_DATABASE_URL: _url, ...vendorEnv } = process.env;
  const vendorCli = (...args: string[]) => runCli(args, { cwd: vendor, env: { ...vendorEnv, FLOTILLA_MIGRATIONS_DIR: '' } });
  await writeFile(join(vendor, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', bundles: { product: 'shop' } }));
  await writeMigrations(join(vendor, 'migrations'), V2);
  await mkdir(join(vendor, 'app', 'static'), { recursive: true });
  await writeFile(join(vendor, 'app', 'index.js'), 'console.log("shop 2.0.0");\n');
  await writeFile(join(vendor, 'app', 'static', 'style.css'), 'body { margin: 0; }\n');
  await Promise.all(['keys', 'other-keys'].map(async (dir) => ok(await vendorCli('keys', 'generate', '--out', join(vendor, dir)), `keys generate ${dir}`)));
  pubkey = join(vendor, 'keys', 'flotilla-signing.pub');
  vendorKeyPem = await readFile(join(vendor, 'keys', 'flotilla-signing.key'), 'utf8');
  otherKeyPem = await readFile(join(vendor, 'other-keys', 'flotilla-signing.key'), 'utf8');
  const build = (out: string, key: string, ...more: string[]) =>
    vendorCli('bundle', 'build', '--version', '2.0.0', '--key', join(vendor, key, 'flotilla-signing.key'), '--app', 'app', '--out', out, ...more);
  const built = await Promise.all([
    build(join(vendor, 'shop-2.0.0.flotilla.tgz'), 'keys', '--created', '2026-01-01T00:00:00Z'),
    build(bundlePath('signed-by-another-key'), 'other-keys', '--created', '2026-01-01T00:00:00Z'),
    build(bundlePath('expired'), 'keys', '--created', '2020-01-01T00:00:00Z', '--expires', '1d'),
  ]);
  for (const result of built) ok(result, 'bundle build');
  genuine = await readFile(join(vendor, 'shop-2.0.0.flotilla.tgz'));
  genuineEntries = await unpack(genuine);

  // Hostile entries ride in a manifest re-signed with the vendor's own key: the entry check alone can refuse them.
  const signedWith = (...added: TarEntry[]) => repack([...resign(genuineEntries, vendorKeyPem, listing(...added)), ...added]);
  const zeros = { path: 'app/zeros.bin', size: BOMB_MEMBERS * BOMB_BLOCK, sha256: TEN_GIB_OF_ZEROS_SHA256 };
  bombEntries = resign(genuineEntries, vendorKeyPem, (m) => ({ ...m, files: [...m.files, zeros].sort((a, b) => (a.path < b.path ? -1 : 1)) }));
  bomb = await decompressionBomb(zeros.path, bombEntries);
  const crafted: [CaseName, Buffer][] = [
    ['migration-byte-flipped', await repack(flipByte(genuineEntries, MIGRATION, { at: 'price' }))],
    ['manifest-byte-flipped', await repack(flipByte(genuineEntries, 'manifest.json', { at: '"version": "2' }))],
    ['signature-byte-flipped', await repack(flipByte(genuineEntries, 'manifest.sig', { index: 17 }))],
    ['dotdot-entry', await signedWith(fileEntry(DOTDOT, DROP))],
    ['absolute-entry', await signedWith(fileEntry(ABSOLUTE, DROP))],
    ['symlink-entry', await signedWith(linkEntry(SYMLINK.name, 'symlink', SYMLINK.target))],
    ['hardlink-entry', await signedWith(linkEntry(HARDLINK.name, 'link', HARDLINK.target))],
    ['file-missing', await repack(genuineEntries.filter((e) => e.header.name !== MIGRATION))],
    ['file-unlisted', await repack([...genuineEntries, fileEntry(UNLISTED, DROP)])],
    ['decompression-bomb', bomb.bytes],
  ];
  for (const [name, bytes] of crafted) await writeFile(bundlePath(name), bytes);
  for (const [name] of CASES) hostile.set(name, await readFile(bundlePath(name)));

  // The site: release 1.0.0 (the vendor's first migration), two tenants with rows, payloads installed into app/.
  project = await testProject();
  const configFile = join(project.dir, 'flotilla.config.json');
  const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  await writeFile(configFile, JSON.stringify({ ...config, bundles: { product: 'shop', appDir: 'app' } }, null, 2));
  await writeMigrations(project.migrationsDir, V1);
  for (const slug of TENANTS) {
    databases[slug] = (JSON.parse(ok(await site('tenant', 'create', slug, '--json'), `tenant create ${slug}`).stdout) as { database: string }).database;
    await project.query(databases[slug]!, `INSERT INTO items SELECT g, $1 || g FROM generate_series(1, 25) g`, [slug]);
  }
  before = await siteState();
  tmpBefore = new Set(await readdir(tmpdir()));
}, 120_000);

afterAll(async () => {
  await project?.cleanup();
  for (const dir of [vendor, inbox]) if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every file and folder under `dir`: path, size, SHA-256 and modification time (links: their target). */
async function tree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const info = await lstat(join(dir, path));
    if (info.isDirectory()) out.push(`${path}/`, ...(await tree(dir, path)));
    else if (info.isSymbolicLink()) out.push(`${path} -> ${await readlink(join(dir, path))}`);
    else out.push(`${path} ${info.size} ${sha256(await readFile(join(dir, path)))} ${info.mtimeMs}`);
  }
  return out;
}

/** What a bundle could change: each tenant's history, columns and rows; every control table's row count; the site's files; the project's databases. */
async function siteState() {
  // One query per tenant: its history, every column of its tables, and its rows, as JSON.
  const tenant = async (slug: string) =>
    (
      await project.query(
        databases[slug]!,
        `SELECT (SELECT json_agg(h ORDER BY h.version) FROM (SELECT version, name, checksum, applied_at::text FROM flotilla_migrations) h) AS history,
                (SELECT json_agg(table_schema || '.' || table_name || '.' || column_name ORDER BY 1) FROM information_schema.columns
                  WHERE table_schema NOT IN ('pg_catalog', 'information_schema')) AS columns,
                (SELECT json_agg(i ORDER BY i.id) FROM items i) AS rows`,
      )
    )[0];
  const control = `${project.prefix}_control`;
  const counts = async () => {
    const tables = await project.query<{ t: string }>(
      control,
      `SELECT format('%I.%I', table_schema, table_name) AS t FROM information_schema.tables WHERE table_schema = 'flotilla' AND table_type = 'BASE TABLE'`,
    );
    return project.query(
      control,
      tables
        .map(({ t }) => `SELECT '${t}' AS t, count(*)::int AS n FROM ${t}`)
        .join(' UNION ALL ')
        .concat(' ORDER BY 1'),
    );
  };
  const [north, south, rows, files, dbs] = await Promise.all([tenant('north'), tenant('south'), counts(), tree(project.dir), databasesLike(project.prefix)]);
  return { tenants: { north, south }, counts: rows, files, databases: dbs };
}

/** Anything in the temp dir named after a hostile entry (new or not), or new and named like a bundle's contents. */
async function leftovers(): Promise<string[]> {
  const now = await readdir(tmpdir());
  // Other test files may make temp dirs meanwhile: only names a hostile bundle could have produced count.
  const named = now.filter((n) => n.includes(TAG) || (!tmpBefore.has(n) && /evil|zeros|passwd/i.test(n)));
  const targets = [join(project.dir, DOTDOT), join(tmpdir(), `${EVIL}.sql`), ABSOLUTE, SYMLINK.target, HARDLINK.target].filter((p) => existsSync(p));
  return [...named, ...targets];
}

async function expectNothingChanged(): Promise<void> {
  const [state, backups, history] = await Promise.all([siteState(), site('backup', 'list', '--json'), site('bundle', 'history', '--json')]);
  expect(state).toEqual(before);
  expect(JSON.parse(ok(backups, 'backup list').stdout)).toEqual([]);
  expect(JSON.parse(ok(history, 'bundle history').stdout)).toEqual([]);
  expect(existsSync(join(project.dir, 'app'))).toBe(false);
  expect(existsSync(join(project.dir, '.flotilla', 'backups'))).toBe(false);
  expect(await leftovers()).toEqual([]);
}

async function timed(run: Promise<CliResult>) {
  const started = performance.now();
  const result = await run;
  return { result, ms: Math.round(performance.now() - started) };
}

/** The exit code, and the error's code and meta from the `--json` output (or what was printed, when it is not an error). */
function outcome({ code, stdout, stderr }: CliResult) {
  try {
    const { error } = JSON.parse(stdout) as { error?: { code: string; meta?: Record<string, unknown> } };
    return { exit: code, code: error?.code ?? 'no error', meta: error?.meta ?? {} };
  } catch {
    const crash = stderr.split('\n').find((l) => /^\w*Error\b/.test(l)) ?? `${stdout}${stderr}`.slice(0, 300);
    return { exit: code, code: `not JSON on stdout; stderr: ${crash.trim()}`, meta: {} };
  }
}

const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'accepted',
    (error: unknown) => (error as { code?: string }).code ?? `no code: ${String(error)}`,
  );

describe('hostile bundles', () => {
  it('verifies the genuine bundle (positive control: the harness accepts a good bundle)', async () => {
    const verified = outcome(await site('bundle', 'verify', join(vendor, 'shop-2.0.0.flotilla.tgz'), '--pubkey', pubkey, '--json'));
    expect(verified.exit).toBe(0);
    const bundle = await verifyBundle(genuine, createPublicKey(await readFile(pubkey, 'utf8')), { flotillaVersion: flotillaVersion() });
    expect([...bundle.files.keys()].sort()).toEqual(['app/index.js', 'app/static/style.css', 'migrations/0001_items.sql', MIGRATION, 'migrations/flotilla.sum']);
    await expectNothingChanged();
  });

  it('crafted each bundle as meant: raw header names, links, signatures, and a bomb small on disk', async () => {
    const vendorKey = createPublicKey(await readFile(pubkey, 'utf8'));
    const signed = async (name: CaseName) => {
      const entries = await unpack(hostile.get(name)!);
      return signatureHolds(null, entryBody(entries, 'manifest.json'), vendorKey, entryBody(entries, 'manifest.sig'));
    };
    const headers = (name: CaseName) => rawHeaders(hostile.get(name)!);
    expect(headers('dotdot-entry')).toContainEqual(expect.objectContaining({ name: DOTDOT, typeflag: '0' }));
    expect(headers('absolute-entry')).toContainEqual(expect.objectContaining({ name: ABSOLUTE, typeflag: '0' }));
    expect(headers('symlink-entry')).toContainEqual(expect.objectContaining({ name: SYMLINK.name, typeflag: '2', linkname: SYMLINK.target }));
    expect(headers('hardlink-entry')).toContainEqual(expect.objectContaining({ name: HARDLINK.name, typeflag: '1', linkname: HARDLINK.target }));
    for (const name of ['dotdot-entry', 'absolute-entry', 'symlink-entry', 'hardlink-entry', 'file-missing', 'file-unlisted', 'migration-byte-flipped', 'expired'] as const)
      expect({ name, signed: await signed(name) }).toEqual({ name, signed: true });
    for (const name of ['manifest-byte-flipped', 'signature-byte-flipped', 'signed-by-another-key'] as const)
      expect({ name, signed: await signed(name) }).toEqual({ name, signed: false });
    expect(headers('file-unlisted').map((h) => h.name)).toContain(UNLISTED);
    expect(headers('file-missing').map((h) => h.name)).not.toContain(MIGRATION);

    // The bomb: a signed manifest listing a 10 GiB file, the header declaring it, then 640 identical gzip members of 16 MiB of zeros.
    const size = (await stat(bundlePath('decompression-bomb'))).size;
    expect(size).toBe(bomb.bytes.length);
    expect(size).toBeLessThan(16 * 1024 ** 2);
    expect(bomb.declared).toBeGreaterThanOrEqual(10 * 1024 ** 3);
    expect(bomb.unpacked).toBeGreaterThanOrEqual(10 * 1024 ** 3);
    expect(rawHeaders(bomb.head).at(-1)).toEqual({ name: 'app/zeros.bin', typeflag: '0', linkname: '', size: bomb.declared });
    expect(gunzipSync(bomb.member).equals(Buffer.alloc(BOMB_BLOCK))).toBe(true);
    expect(gunzipSync(bomb.tail).equals(Buffer.alloc(1024))).toBe(true);
    for (let i = 0, at = bomb.head.length; i < BOMB_MEMBERS; i++, at += bomb.member.length) expect(bomb.bytes.subarray(at, at + bomb.member.length).equals(bomb.member)).toBe(true);
    expect(bomb.head.length + BOMB_MEMBERS * bomb.member.length + bomb.tail.length).toBe(size);
    // Its first member holds the genuine files and a manifest listing app/zeros.bin (true size and SHA-256), signed with the vendor's key.
    const leading = gunzipSync(await repack(bombEntries));
    expect(
      gunzipSync(bomb.head)
        .subarray(0, leading.length - 1024)
        .equals(leading.subarray(0, -1024)),
    ).toBe(true);
    expect(signatureHolds(null, entryBody(bombEntries, 'manifest.json'), vendorKey, entryBody(bombEntries, 'manifest.sig'))).toBe(true);
    expect(entryBody(bombEntries, 'manifest.json').toString()).toContain(TEN_GIB_OF_ZEROS_SHA256);
    console.log(
      `[bundle-hostile] bomb: ${(size / 1024 ** 2).toFixed(1)} MiB on disk (${BOMB_MEMBERS} members of ${bomb.member.length} bytes), declares ${bomb.declared / 1024 ** 3} GiB, unpacks to ${bomb.unpacked} bytes`,
    );
  });

  it.each(CASES)('refuses %s with %s in verify and apply, and changes nothing', async (name, code, entry) => {
    const file = bundlePath(name);
    const run = (command: string) => timed(site('bundle', command, file, '--pubkey', pubkey, '--json'));
    // The bomb's two runs one after the other, so that each is timed alone.
    const [verify, apply] = name === 'decompression-bomb' ? [await run('verify'), await run('apply')] : await Promise.all([run('verify'), run('apply')]);
    const seen = { verify: outcome(verify.result), apply: outcome(apply.result) };
    for (const command of ['verify', 'apply'] as const)
      console.log(`[bundle-hostile] ${name}: ${command} exit ${seen[command].exit} ${seen[command].code} in ${(command === 'verify' ? verify : apply).ms} ms`);
    // Nothing changed, whatever each command answered; then each answered with the case's own code.
    await expectNothingChanged();
    const expected = { exit: 5, code, ...(entry === undefined ? {} : { entry }) };
    const got = (o: ReturnType<typeof outcome>) => ({ exit: o.exit, code: o.code, ...(entry === undefined ? {} : { entry: o.meta.entry }) });
    expect({ verify: got(seen.verify), apply: got(seen.apply) }).toEqual({ verify: expected, apply: expected });
    if (name === 'decompression-bomb') expect(Math.max(verify.ms, apply.ms)).toBeLessThan(20_000);
  });

  it('refuses the same bundles, and a few more, through the library, in memory', async () => {
    const key = createPublicKey(await readFile(pubkey, 'utf8'));
    const options = { flotillaVersion: flotillaVersion() };
    for (const [name, code] of CASES) {
      if (name === 'decompression-bomb') continue;
      expect({ name, code: await codeOf(verifyBundle(hostile.get(name)!, key, options)) }).toEqual({ name, code });
    }
    // The bomb against a 64 MiB limit: refused once 64 MiB are inflated, not 10 GiB.
    const started = performance.now();
    const limits = { maxUnpackedBytes: 64 * 1024 ** 2, maxFiles: 100_000 };
    expect(await codeOf(verifyBundle(bomb.bytes, key, { ...options, limits }))).toBe('FLO_BUNDLE_TOO_LARGE');
    console.log(`[bundle-hostile] bomb refused in-process at a 64 MiB limit in ${Math.round(performance.now() - started)} ms`);
    expect(await codeOf(readArchive(genuine, { maxUnpackedBytes: 1024 ** 3, maxFiles: 3 }))).toBe('FLO_BUNDLE_TOO_LARGE');

    const signedWith = (...added: TarEntry[]) => repack([...resign(genuineEntries, vendorKeyPem, listing(...added)), ...added]);
    const unsafe: [string, Promise<Buffer>][] = [
      ['traversal inside a path', signedWith(fileEntry(`app/../../${EVIL}.js`, DROP))],
      ['a backslash path', signedWith(fileEntry(`app\\..\\${EVIL}.js`, DROP))],
      ['an entry twice', repack([...genuineEntries, fileEntry(MIGRATION, DROP)])],
      ['a directory', repack([...genuineEntries, { header: { name: 'app/static', type: 'directory', mode: 0o755 }, body: Buffer.alloc(0) }])],
      ['a fifo', repack([...genuineEntries, { header: { name: `app/${EVIL}-fifo`, type: 'fifo', mode: 0o644 }, body: Buffer.alloc(0) }])],
      ['a device', repack([...genuineEntries, { header: { name: `app/${EVIL}-dev`, type: 'character-device', mode: 0o644 }, body: Buffer.alloc(0) }])],
    ];
    for (const [what, bytes] of unsafe) expect({ what, code: await codeOf(verifyBundle(await bytes, key, options)) }).toEqual({ what, code: 'FLO_BUNDLE_UNSAFE_ENTRY' });

    // A migration changed and the manifest updated to match, without the vendor's key: the signature gives it away.
    const changed = genuineEntries.map((e) => (e.header.name === MIGRATION ? { header: e.header, body: Buffer.from(DROP) } : e));
    const recomputed = resign(changed, vendorKeyPem, (m) => ({
      ...m,
      files: m.files.map((f) => (f.path === MIGRATION ? { ...f, size: DROP.length, sha256: sha256(Buffer.from(DROP)) } : f)),
    })).map((e) => (e.header.name === 'manifest.sig' ? { header: e.header, body: entryBody(genuineEntries, 'manifest.sig') } : e));
    expect(await codeOf(verifyBundle(await repack(recomputed), key, options))).toBe('FLO_BUNDLE_SIGNATURE_INVALID');
    // Signed by another key while claiming the vendor's key id: still refused.
    const forged = resign(genuineEntries, otherKeyPem, (m) => m);
    expect(await codeOf(verifyBundle(await repack(forged), key, options))).toBe('FLO_BUNDLE_SIGNATURE_INVALID');
    expect(await codeOf(readArchive(Buffer.from('not a bundle')))).toBe('FLO_BUNDLE_UNREADABLE');
    await expectNothingChanged();
  });

  it('finally applies the genuine bundle: both tenants upgraded and backed up, the application installed', async () => {
    const applied = await site('bundle', 'apply', join(vendor, 'shop-2.0.0.flotilla.tgz'), '--pubkey', pubkey, '--json');
    expect(outcome(applied).exit).toBe(0);
    const report = JSON.parse(applied.stdout) as { outcome: string; tenants: { tenant: string; status: string; versionAfter: string }[] };
    expect(report.outcome).toBe('installed');
    expect(report.tenants.map((t) => [t.tenant, t.status, t.versionAfter])).toEqual(TENANTS.map((slug) => [slug, 'upgraded', '0002']));
    for (const slug of TENANTS) {
      expect((await project.query(databases[slug]!, 'SELECT version FROM flotilla_migrations ORDER BY 1')).map((r) => r.version)).toEqual(['0001', '0002']);
      expect(await project.query(databases[slug]!, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 25 }]);
    }
    expect(JSON.parse((await site('backup', 'list', '--json')).stdout)).toHaveLength(2);
    expect(JSON.parse((await site('bundle', 'history', '--json')).stdout)).toEqual([expect.objectContaining({ product: 'shop', version: '2.0.0', outcome: 'installed' })]);
    expect(await readFile(join(project.dir, 'app', 'index.js'), 'utf8')).toBe('console.log("shop 2.0.0");\n');
    expect(await leftovers()).toEqual([]);
  });
});
