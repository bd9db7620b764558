import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answerFor } from '../../src/runtime/answer.js';
import type { TenantContext } from '../../src/runtime/context.js';
import { runInScope } from '../../src/runtime/context.js';
import type { TenantFiles } from '../../src/runtime/storage.js';
import { tenantStorage } from '../../src/runtime/storage.js';

function as<T>(slug: string, fn: () => T): T {
  const tenant: TenantContext = { id: slug, slug, kind: 'database', server: 'test', database: `tenant_${slug}`, schema: 'public', source: 'runAs' };
  return runInScope(tenant, fn);
}

let dir: string;
/** Outside every tenant area: what no path may reach. */
let outside: string;
let root: string;
let files: TenantFiles;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-storage-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let run = 0;
beforeEach(async () => {
  root = join(dir, `root-${++run}`, 'tenants');
  outside = join(dir, `outside-${run}`);
  await mkdir(join(outside, 'secrets'), { recursive: true });
  await writeFile(join(outside, 'secret.txt'), 'outside');
  await writeFile(join(outside, 'secrets/key'), 'outside');
  files = tenantStorage(root);
  // The neighbour whose slug extends ab's.
  await as('ab-cd', () => files.writeFile('secret', 'ab-cd'));
});

async function refused(promise: Promise<unknown>, reason: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code: 'FLO_PATH_ESCAPE', meta: { tenant: 'ab', reason } });
  expect(answerFor(error).status).toBe(400);
  // The answer names the path the request gave, never where the areas are.
  expect(JSON.stringify(answerFor(error).body)).not.toContain(dir);
}

describe('a tenant file area', () => {
  it("writes and reads inside <root>/<slug>/, creating the area and its directories private, apart from the neighbour's", async () => {
    expect(await as('ab', () => files.list())).toEqual([]);
    await as('ab', () => files.writeFile('uploads/2024/logo.png', new Uint8Array([1, 2, 3])));
    await as('ab', () => files.writeFile('secret', 'ab'));
    expect(await readFile(join(root, 'ab/uploads/2024/logo.png'))).toEqual(Buffer.from([1, 2, 3]));
    expect(await as('ab', () => files.readFile('uploads/2024/logo.png'))).toEqual(Buffer.from([1, 2, 3]));
    expect(await as('ab', () => files.readFile('secret', 'utf8'))).toBe('ab');
    expect(await as('ab-cd', () => files.readFile('secret', 'utf8'))).toBe('ab-cd');
    expect((await stat(join(root, 'ab'))).mode & 0o077).toBe(0);
    expect((await stat(join(root, 'ab/uploads/2024'))).mode & 0o077).toBe(0);
    expect((await stat(join(root, 'ab/secret'))).mode & 0o077).toBe(0);

    expect(await as('ab', () => files.list())).toEqual(['secret', 'uploads']);
    expect(await as('ab', () => files.list('uploads/2024'))).toEqual(['logo.png']);
    expect(await as('ab', () => files.exists('uploads/2024/logo.png'))).toBe(true);
    expect(await as('ab', () => files.exists('uploads/nope/logo.png'))).toBe(false);
    expect(await as('ab', () => files.path('uploads/./2024//logo.png'))).toBe(join(root, 'ab/uploads/2024/logo.png'));
    // Overwriting truncates.
    await as('ab', () => files.writeFile('secret', 'x'));
    expect(await as('ab', () => files.readFile('secret', 'utf8'))).toBe('x');
  });

  it('needs a tenant in scope', async () => {
    await expect(files.readFile('secret')).rejects.toMatchObject({ code: 'FLO_NO_TENANT_SCOPE' });
    await expect(files.writeFile('x', 'y')).rejects.toMatchObject({ code: 'FLO_NO_TENANT_SCOPE' });
  });

  it('answers a missing file as Node does, naming the path the tenant gave', async () => {
    const error = await as('ab', () => files.readFile('nope/x.txt')).catch((e: NodeJS.ErrnoException) => e);
    expect(error).toMatchObject({ code: 'ENOENT', path: 'nope/x.txt' });
    await as('ab', () => files.writeFile('a.txt', 'a'));
    const missing = await as('ab', () => files.readFile('b.txt')).catch((e: NodeJS.ErrnoException) => e);
    expect(missing).toMatchObject({ code: 'ENOENT', path: 'b.txt', message: "ENOENT: open 'b.txt'" });
    await expect(as('ab', () => files.list('nope'))).rejects.toMatchObject({ code: 'ENOENT', path: 'nope' });
  });

  it('takes a ".." that stays inside, and names literally ("%2e%2e" is a name, not "..")', async () => {
    await as('ab', () => files.writeFile('a/../b.txt', 'b'));
    expect(await readFile(join(root, 'ab/b.txt'), 'utf8')).toBe('b');
    await as('ab', () => files.writeFile('%2e%2e/x', 'literal'));
    expect(await readFile(join(root, 'ab/%2e%2e/x'), 'utf8')).toBe('literal');
    await as('ab', () => files.writeFile('..x/...', 'dots'));
    expect(await readFile(join(root, 'ab/..x/...'), 'utf8')).toBe('dots');
  });

  it("refuses paths that leave the area, into the neighbour's or anywhere else", async () => {
    const cases: [string, string][] = [
      ['../x', 'parent'],
      ['a/../../x', 'parent'],
      ['../ab-cd/secret', 'parent'],
      ['..', 'parent'],
      ['/etc/passwd', 'absolute'],
      ['//ab-cd/secret', 'absolute'],
      ['a\0b', 'nul'],
      ['..\\ab-cd\\secret', 'backslash'],
    ];
    for (const [path, reason] of cases) {
      await refused(
        as('ab', () => files.readFile(path)),
        reason,
      );
      await refused(
        as('ab', () => files.writeFile(path, 'overwritten')),
        reason,
      );
      await refused(
        as('ab', () => files.exists(path)),
        reason,
      );
      await refused(
        as('ab', () => files.remove(path)),
        reason,
      );
      await refused(
        as('ab', () => files.path(path)),
        reason,
      );
      await refused(
        as('ab', () => files.list(path)),
        reason,
      );
    }
    expect(await as('ab-cd', () => files.readFile('secret', 'utf8'))).toBe('ab-cd');
    expect(await readdir(join(root, '..'))).toEqual(['tenants']);
    // Nothing was written for ab either: the refusals came before any I/O.
    expect(await readdir(root)).toEqual(['ab-cd']);
  });

  it('refuses a symbolic link in the area, whether it leads out or stays in', async () => {
    await as('ab', () => files.writeFile('docs/real.txt', 'inside'));
    const area = join(root, 'ab');
    await symlink(join(outside, 'secret.txt'), join(area, 'out-file'));
    await symlink(join(outside, 'secrets'), join(area, 'out-dir'));
    await symlink('../ab-cd', join(area, 'neighbour'));
    await symlink('docs/real.txt', join(area, 'in-file'));
    await symlink('docs', join(area, 'in-dir'));

    for (const path of ['out-file', 'out-dir/key', 'neighbour/secret', 'in-file', 'in-dir/real.txt']) {
      await refused(
        as('ab', () => files.readFile(path)),
        'symlink',
      );
      await refused(
        as('ab', () => files.writeFile(path, 'overwritten')),
        'symlink',
      );
      await refused(
        as('ab', () => files.exists(path)),
        'symlink',
      );
    }
    await refused(
      as('ab', () => files.writeFile('out-dir/new', 'x')),
      'symlink',
    );
    await refused(
      as('ab', () => files.writeFile('neighbour/new/deeper', 'x')),
      'symlink',
    );
    await refused(
      as('ab', () => files.list('out-dir')),
      'symlink',
    );
    await refused(
      as('ab', () => files.path('out-dir/key')),
      'symlink',
    );

    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('outside');
    expect(await readdir(join(outside, 'secrets'))).toEqual(['key']);
    expect(await readFile(join(outside, 'secrets/key'), 'utf8')).toBe('outside');
    expect(await readdir(join(root, 'ab-cd'))).toEqual(['secret']);
    expect(await readFile(join(root, 'ab-cd/secret'), 'utf8')).toBe('ab-cd');
    expect(await as('ab', () => files.readFile('docs/real.txt', 'utf8'))).toBe('inside');
  });

  it("refuses an area that is itself a link to the neighbour's", async () => {
    await symlink(join(root, 'ab-cd'), join(root, 'ab'));
    await refused(
      as('ab', () => files.readFile('secret')),
      'symlink',
    );
    await refused(
      as('ab', () => files.writeFile('secret', 'overwritten')),
      'symlink',
    );
    await refused(
      as('ab', () => files.list()),
      'symlink',
    );
    expect(await readFile(join(root, 'ab-cd/secret'), 'utf8')).toBe('ab-cd');
  });

  it('removes files and trees, and removes a link without following it', async () => {
    await as('ab', () => files.writeFile('tree/a/b/c.txt', 'c'));
    await as('ab', () => files.writeFile('tree/d.txt', 'd'));
    await symlink(join(outside, 'secrets'), join(root, 'ab/tree/a/out-dir'));
    await symlink(join(outside, 'secret.txt'), join(root, 'ab/out-file'));

    expect(await as('ab', () => files.remove('tree/d.txt'))).toBe(true);
    expect(await as('ab', () => files.remove('tree/d.txt'))).toBe(false);
    expect(await as('ab', () => files.remove('nope/d.txt'))).toBe(false);
    expect(await as('ab', () => files.remove('tree'))).toBe(true);
    expect(await as('ab', () => files.remove('out-file'))).toBe(true);
    expect(await as('ab', () => files.list())).toEqual([]);
    await expect(lstat(join(root, 'ab/out-file'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('outside');
    expect(await readFile(join(outside, 'secrets/key'), 'utf8')).toBe('outside');
    await expect(as('ab', () => files.remove(''))).rejects.toMatchObject({ code: 'FLO_USAGE' });
    await expect(as('ab', () => files.remove('a/..'))).rejects.toMatchObject({ code: 'FLO_USAGE' });
  });

  it('does not hang on a FIFO planted in the area', async () => {
    await as('ab', () => files.writeFile('x', 'x'));
    execFileSync('mkfifo', [join(root, 'ab/pipe')]);
    expect(await as('ab', () => files.readFile('pipe', 'utf8'))).toBe('');
    await expect(as('ab', () => files.writeFile('pipe', 'x'))).rejects.toMatchObject({ code: 'ENXIO', path: 'pipe' });
  });

  it('reads and writes nothing outside while a directory of the area is swapped for a link to outside', async () => {
    const area = join(root, 'ab');
    await as('ab', () => files.writeFile('d/key', 'inside'));
    await symlink(join(outside, 'secrets'), join(area, 'link'));
    // Another process (here, this one) swaps `d` between the directory and a link to outside while the tenant reads and writes in d.
    let swapping = true;
    let strays = 0;
    /** Renames, first moving aside a `d` a write created meanwhile (its files stay in the area). */
    const place = async (from: string, to: string): Promise<void> => {
      for (;;) {
        try {
          return await rename(join(area, from), join(area, to));
        } catch (error) {
          if (!['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes((error as { code?: string }).code ?? '')) throw error;
          await rename(join(area, 'd'), join(area, `stray-${++strays}`));
        }
      }
    };
    const swapper = (async () => {
      let swaps = 0;
      while (swapping || swaps < 10) {
        await place('d', 'real');
        await place('link', 'd');
        await place('d', 'link');
        await place('real', 'd');
        swaps++;
      }
      return swaps;
    })();
    // Stops the loop below if the swapper fails, and keeps its error for the assertion.
    const failed = swapper.then(
      () => undefined,
      (error: unknown) => {
        swapping = false;
        return error;
      },
    );
    const outcomes = new Map<string, number>();
    const count = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    for (let i = 0; i < 1000 && swapping; i++) {
      count(await as('ab', () => files.readFile('d/key', 'utf8')).catch((e: { code?: string }) => e.code ?? 'other'));
      await as('ab', () => files.writeFile(`d/written-${i}`, 'x')).then(
        () => count('written'),
        (e: { code?: string }) => count(e.code ?? 'other'),
      );
    }
    swapping = false;
    expect(await failed).toBeUndefined();
    const swaps = await swapper;
    console.log(`[flotilla tests] storage race: ${swaps} swaps; reads and writes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expect(swaps).toBeGreaterThan(10);
    // Never the outside file's content, never a file written outside.
    expect(outcomes.has('outside')).toBe(false);
    expect(await readdir(join(outside, 'secrets'))).toEqual(['key']);
    // A read or write met the directory, the link (ELOOP/ENOTDIR from O_NOFOLLOW, or FLO_PATH_ESCAPE), or neither mid-swap.
    expect([...outcomes.keys()].filter((o) => !['inside', 'written', 'FLO_PATH_ESCAPE', 'ENOTDIR', 'ENOENT'].includes(o))).toEqual([]);
    // The race was run: some reads and writes got through, others met the link.
    expect(outcomes.get('inside')).toBeGreaterThan(0);
    expect(outcomes.get('written')).toBeGreaterThan(0);
    expect((outcomes.get('FLO_PATH_ESCAPE') ?? 0) + (outcomes.get('ENOTDIR') ?? 0)).toBeGreaterThan(0);
  });
});
