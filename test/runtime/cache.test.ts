import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cacheKey, escapeGlob, flushTenant, tenantCache } from '../../src/runtime/cache.js';
import type { TenantContext } from '../../src/runtime/context.js';
import { runInScope } from '../../src/runtime/context.js';

const HOST = '127.0.0.1';
const PORT = 6379;

async function redisReachable(): Promise<boolean> {
  const probe = new Redis({ host: HOST, port: PORT, lazyConnect: true, connectTimeout: 10_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

const reachable = await redisReachable();
if (!reachable) {
  // CI runs Redis: there, an unreachable one is a broken setup, not a reason to skip.
  if (process.env.CI) throw new Error(`The cache tests need Redis at ${HOST}:${PORT}, and CI is set: start Redis there.`);
  console.warn(`[flotilla tests] test/runtime/cache.test.ts is skipped: it needs Redis at ${HOST}:${PORT} (start redis-server to run it).`);
}

function as<T>(slug: string, fn: () => T): T {
  const tenant: TenantContext = { id: slug, slug, kind: 'schema', server: 'test', database: 'test', schema: `tenant_${slug}`, source: 'runAs' };
  return runInScope(tenant, fn);
}

/** Every key of this run is under NS, so parallel runs on the same Redis never meet. */
const NS = `flotilla-test:${randomBytes(6).toString('hex')}:`;
/** Each test's own key prefix under NS: the keys one test leaves do not count in another. */
let PREFIX = '';
let tests = 0;
const connections: Redis[] = [];
function connect(options: { keyPrefix?: string } = {}): Redis {
  const redis = new Redis({ host: HOST, port: PORT, db: 0, ...options });
  connections.push(redis);
  return redis;
}

/** The keys under `match` (a glob), read with the test's own connection. */
async function keysUnder(redis: Redis, match: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  return [...new Set(keys)].sort();
}

/** The commands Redis received from `client`, as MONITOR saw them, until `fn` has finished. */
async function commandsOf(client: Redis, fn: () => Promise<unknown>): Promise<string[][]> {
  const address = /addr=(\S+)/.exec(String(await client.client('INFO')))![1]!;
  // A connection of its own, opened with the same options.
  const monitor = await client.monitor();
  const seen: string[][] = [];
  const token = `flotilla-test-end-${randomBytes(4).toString('hex')}`;
  let ended!: () => void;
  const end = new Promise<void>((resolve) => {
    ended = resolve;
  });
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== address) return;
    if (args[0]?.toLowerCase() === 'echo' && args[1] === token) ended();
    else seen.push([args[0]!.toLowerCase(), ...args.slice(1)]);
  });
  try {
    await fn();
    // Redis feeds MONITOR in the order it runs commands: once the marker arrives, everything before it has.
    await client.echo(token);
    await end;
  } finally {
    monitor.disconnect();
  }
  return seen;
}

describe.skipIf(!reachable)('the tenant cache on Redis', () => {
  let redis: Redis;
  let admin: Redis;
  beforeAll(() => {
    redis = connect();
    admin = connect();
  });
  beforeEach(() => {
    PREFIX = `${NS}${++tests}:tenant:`;
  });
  afterAll(async () => {
    const left = await keysUnder(admin, `${escapeGlob(NS)}*`);
    for (let i = 0; i < left.length; i += 1000) await admin.unlink(...left.slice(i, i + 1000));
    for (const connection of connections) connection.disconnect();
  });

  it('names keys after the tenant in scope, and refuses to name one outside a scope', () => {
    expect(as('ab', () => cacheKey('user:1'))).toBe('tenant:ab:user:1');
    expect(as('ab-cd', () => cacheKey('user:1', { prefix: 'app:' }))).toBe('app:ab-cd:user:1');
    expect(() => cacheKey('user:1')).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
    expect(() => tenantCache(redis).key('x')).toThrow(expect.objectContaining({ code: 'FLO_NO_TENANT_SCOPE' }));
  });

  it("keeps each tenant's values apart on one shared connection, even in concurrent scopes", async () => {
    const cache = tenantCache(redis, { prefix: PREFIX });
    await Promise.all(
      ['ab', 'ab-cd', 'ab', 'ab-cd'].map((slug, i) =>
        as(slug, async () => {
          await new Promise((resolve) => setImmediate(resolve));
          await cache.set(`visits-${i % 2}`, slug);
          await cache.hset('profile', { name: slug, n: i });
        }),
      ),
    );
    expect(await as('ab', () => cache.get('visits-0'))).toBe('ab');
    expect(await as('ab-cd', () => cache.get('visits-1'))).toBe('ab-cd');
    expect(await admin.get(`${PREFIX}ab:visits-0`)).toBe('ab');
    expect(await admin.get(`${PREFIX}ab-cd:visits-1`)).toBe('ab-cd');
    expect(await as('ab', () => cache.hgetall('profile'))).toEqual({ name: 'ab', n: '2' });
    expect(await as('ab-cd', () => cache.hget('profile', 'name'))).toBe('ab-cd');

    await as('ab', async () => {
      expect(await cache.incr('counter')).toBe(1);
      expect(await cache.incr('counter')).toBe(2);
      expect(await cache.ttl('counter')).toBe(-1);
      expect(await cache.expire('counter', 60)).toBe(true);
      expect(await cache.ttl('counter')).toBeGreaterThan(50);
      expect(await cache.expire('missing', 60)).toBe(false);
      await cache.set('session', 'token', { ex: 30 });
      expect(await cache.ttl('session')).toBeGreaterThan(20);
      expect(await cache.mget('visits-0', 'missing', 'session')).toEqual(['ab', null, 'token']);
      expect(await cache.exists('session')).toBe(true);
      expect(await cache.del('session', 'missing')).toBe(1);
      expect(await cache.exists('session')).toBe(false);
      await expect(cache.set('x', 'y', { ex: 0 })).rejects.toMatchObject({ code: 'FLO_USAGE' });
      await expect(cache.expire('x', 1.5)).rejects.toMatchObject({ code: 'FLO_USAGE' });
    });
    expect(await as('ab-cd', () => cache.exists('counter'))).toBe(false);
  });

  it("flushes one tenant's 10,000 keys with SCAN and UNLINK only, and leaves every other key", async () => {
    const cache = tenantCache(redis, { prefix: PREFIX });
    const fill = admin.pipeline();
    for (let i = 0; i < 10_000; i++) fill.set(`${PREFIX}ab:item:${i}`, i);
    for (let i = 0; i < 1_000; i++) fill.set(`${PREFIX}ab-cd:item:${i}`, i);
    // Names that start like ab's without being ab's keys.
    const others = [`${PREFIX}ab`, `${PREFIX}abc:item:1`, `${PREFIX}ab-:item:1`, `${PREFIX}AB:item:1`, `${NS}other:ab:item:1`, `${NS}ab:item:1`];
    for (const key of others) fill.set(key, 'keep');
    await fill.exec();
    await as('ab', () => cache.hset('profile', { name: 'ab' }));
    await as('ab', () => cache.set('session', 'token', { ex: 600 }));

    const started = performance.now();
    let removed = 0;
    const commands = await commandsOf(redis, async () => {
      removed = await as('ab', () => cache.flush());
    });
    const elapsed = performance.now() - started;

    expect(removed).toBe(10_002);
    const names = new Set(commands.map(([name]) => name));
    expect(names.has('keys')).toBe(false);
    expect([...names].sort()).toEqual(['scan', 'unlink']);
    const scans = commands.filter(([name]) => name === 'scan');
    expect(scans.length).toBeGreaterThan(1);
    for (const scan of scans) expect(scan.slice(2)).toEqual(['MATCH', `${escapeGlob(`${PREFIX}ab:`)}*`, 'COUNT', '500']);
    const unlinked = commands.filter(([name]) => name === 'unlink').flatMap(([, ...keys]) => keys);
    expect(unlinked.length).toBeGreaterThanOrEqual(10_002);
    expect(unlinked.filter((key) => !key.startsWith(`${PREFIX}ab:`))).toEqual([]);

    expect(await keysUnder(admin, `${escapeGlob(`${PREFIX}ab:`)}*`)).toEqual([]);
    expect((await keysUnder(admin, `${escapeGlob(`${PREFIX}ab-cd:`)}*`)).length).toBe(1_000);
    expect(await admin.get(`${PREFIX}ab-cd:item:999`)).toBe('999');
    expect(await admin.mget(...others)).toEqual(others.map(() => 'keep'));
    console.log(`[flotilla tests] flushed 10,002 keys of one tenant in ${Math.round(elapsed)} ms (${scans.length} SCAN steps)`);
  });

  it('flushes a tenant named by an operator, outside any scope, after checking the slug', async () => {
    await admin.mset(`${PREFIX}ab:a`, '1', `${PREFIX}ab:b`, '2', `${PREFIX}ab-cd:a`, '3');
    expect(await flushTenant(redis, 'ab', { prefix: PREFIX })).toBe(2);
    expect(await admin.mget(`${PREFIX}ab:a`, `${PREFIX}ab-cd:a`)).toEqual([null, '3']);
    expect(await flushTenant(redis, 'ab', { prefix: PREFIX })).toBe(0);
    for (const slug of ['*', 'ab*', 'ab:cd', 'a', '', 'AB', '../ab']) {
      await expect(flushTenant(redis, slug, { prefix: PREFIX })).rejects.toMatchObject({ code: 'FLO_SLUG_INVALID' });
    }
    expect(await admin.get(`${PREFIX}ab-cd:a`)).toBe('3');
  });

  it("matches a prefix holding glob characters literally, so it flushes no lookalike's keys", async () => {
    const prefix = `${NS}app*[x]?\\:`;
    const cache = tenantCache(redis, { prefix });
    await as('ab', () => cache.set('k', 'mine'));
    // Read as a glob, the prefix would match this name too.
    const lookalike = `${NS}appQQx!:ab:k`;
    await admin.set(lookalike, 'keep');
    expect(await as('ab', () => cache.flush())).toBe(1);
    expect(await admin.get(`${prefix}ab:k`)).toBeNull();
    expect(await admin.get(lookalike)).toBe('keep');
  });

  it("flushes through a client with ioredis's keyPrefix, which SCAN does not apply", async () => {
    const prefixed = connect({ keyPrefix: `${NS}kp:` });
    const cache = tenantCache(prefixed);
    await as('ab', () => Promise.all([cache.set('a', '1'), cache.set('b', '2')]));
    await as('ab-cd', () => cache.set('a', '3'));
    expect(await admin.get(`${NS}kp:tenant:ab:a`)).toBe('1');
    expect(await as('ab', () => cache.flush())).toBe(2);
    expect(await keysUnder(admin, `${escapeGlob(`${NS}kp:`)}*`)).toEqual([`${NS}kp:tenant:ab-cd:a`]);
  });

  it('runs the README example (examples/runtime/cache-and-files.ts) as written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-example-'));
    const slugs: string[] = [];
    try {
      // The example imports the package as an app does; here its subpaths are this checkout's sources.
      const source = (await readFile(new URL('../../examples/runtime/cache-and-files.ts', import.meta.url), 'utf8'))
        .replace("'flotilla/runtime/cache'", JSON.stringify(new URL('../../src/runtime/cache.ts', import.meta.url).pathname))
        .replace("'flotilla/runtime/storage'", JSON.stringify(new URL('../../src/runtime/storage.ts', import.meta.url).pathname));
      expect(source).not.toMatch(/'flotilla\//);
      await writeFile(join(dir, 'example.ts'), source);
      const { avatars } = (await import(pathToFileURL(join(dir, 'example.ts')).href)) as typeof import('../../examples/runtime/cache-and-files.js');

      // The example uses the default prefix (tenant:<slug>:…): tenants of this run only, so parallel runs never meet.
      const a = `x${randomBytes(4).toString('hex')}`;
      const b = `${a}-cd`;
      slugs.push(a, b);
      const app = avatars(redis, join(dir, 'tenants'));
      await as(a, () => app.save('ada', new Uint8Array(42)));
      await as(b, () => app.save('ada', new Uint8Array(7)));
      expect(await as(a, () => app.size('ada'))).toBe(42);
      expect(await as(b, () => app.size('ada'))).toBe(7);
      expect((await readFile(join(dir, 'tenants', a, 'avatars/ada.png'))).byteLength).toBe(42);
      await expect(as(a, () => app.save(`../../${b}/avatars/ada`, new Uint8Array(1)))).rejects.toMatchObject({ code: 'FLO_PATH_ESCAPE' });
      expect((await readFile(join(dir, 'tenants', b, 'avatars/ada.png'))).byteLength).toBe(7);

      expect(await app.forget(a)).toBe(1);
      expect(await admin.get(`tenant:${a}:avatar-size:ada`)).toBeNull();
      expect(await admin.get(`tenant:${b}:avatar-size:ada`)).toBe('7');
      // Gone from the cache, read again from the file.
      expect(await as(a, () => app.size('ada'))).toBe(42);
    } finally {
      for (const slug of slugs) await flushTenant(admin, slug);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
