import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/core/checksum.js';
import { loadMigrationSet } from '../../src/core/migration-set.js';
import { readMigrationDir } from '../../src/core/migration-file.js';
import { renderSumFile } from '../../src/core/sum-file.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-dir-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function write(files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

describe('migration directories', () => {
  it('reads plain files ordered numerically by version, with SHA-256 checksums', async () => {
    await write({ '10_c.sql': 'SELECT 3;', '2_b.sql': 'SELECT 2;', '0001_a.sql': 'SELECT 1;', 'notes.txt': 'ignored' });
    const files = await readMigrationDir(dir);
    expect(files.map((f) => f.id)).toEqual(['0001_a', '2_b', '10_c']);
    expect(files[0]!.checksum).toBe(sha256('SELECT 1;'));
  });

  it('reads the Prisma layout as is', async () => {
    await write({
      '20240101000000_init/migration.sql': 'CREATE TABLE a (id int);',
      '20240102000000_more/migration.sql': 'CREATE TABLE b (id int);',
      'migration_lock.toml': 'provider = "postgresql"',
    });
    const files = await readMigrationDir(dir);
    expect(files.map((f) => [f.version, f.name, f.path])).toEqual([
      ['20240101000000', 'init', '20240101000000_init/migration.sql'],
      ['20240102000000', 'more', '20240102000000_more/migration.sql'],
    ]);
  });

  it('refuses a .sql file that does not follow the naming, instead of skipping it', async () => {
    await write({ 'add_users.sql': 'SELECT 1;' });
    await expect(readMigrationDir(dir)).rejects.toMatchObject({ code: 'FLO_MIGRATION_NAME_INVALID' });
  });

  it('reports a missing directory with what to do', async () => {
    await expect(readMigrationDir(join(dir, 'nope'))).rejects.toMatchObject({ code: 'FLO_MIGRATIONS_DIR_MISSING', hint: expect.stringContaining('flotilla init') });
  });

  it('accepts a directory matching flotilla.sum and names every difference otherwise', async () => {
    await write({ '0001_a.sql': 'SELECT 1;', '0002_b.sql': 'SELECT 2;' });
    await writeFile(join(dir, 'flotilla.sum'), renderSumFile(await readMigrationDir(dir)));
    await expect(loadMigrationSet(dir)).resolves.toMatchObject({ hasSumFile: true });
    await write({ '0002_b.sql': 'SELECT 22;', '0003_c.sql': 'SELECT 3;' });
    await rm(join(dir, '0001_a.sql'));
    const error = await loadMigrationSet(dir).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FLO_SUM_MISMATCH', meta: { changed: ['0002_b.sql'], added: ['0003_c.sql'], removed: ['0001_a.sql'] } });
    expect((error as Error).message).toContain('flotilla.sum');
  });

  it('makes two branches that each add a migration conflict on the first line of flotilla.sum', async () => {
    await write({ '0001_a.sql': 'SELECT 1;' });
    const base = await readMigrationDir(dir);
    const branchA = renderSumFile([...base, { ...base[0]!, id: '0002_a', path: '0002_a.sql', checksum: sha256('A') }]);
    const branchB = renderSumFile([...base, { ...base[0]!, id: '0002_b', path: '0002_b.sql', checksum: sha256('B') }]);
    expect(branchA.split('\n')[0]).not.toBe(renderSumFile(base).split('\n')[0]);
    expect(branchA.split('\n')[0]).not.toBe(branchB.split('\n')[0]);
  });
});
