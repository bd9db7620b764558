import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
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

  describe('hostile directories: every .sql file is applied or refused, never skipped', () => {
    const refusedFor = async () => (await readMigrationDir(dir).catch((e: unknown) => e)) as { code: string; message: string; meta: Record<string, unknown> };

    it('refuses a migration that is a symbolic link to a file outside the directory', async () => {
      const outside = await mkdtemp(join(tmpdir(), 'flotilla-outside-'));
      await writeFile(join(outside, 'evil.sql'), 'DROP TABLE members;');
      await write({ '0001_a.sql': 'SELECT 1;' });
      await symlink(join(outside, 'evil.sql'), join(dir, '0002_evil.sql'));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: '0002_evil.sql' } });
      await rm(outside, { recursive: true, force: true });
    });

    it('refuses a flotilla.sum that is a symbolic link', async () => {
      await write({ '0001_a.sql': 'SELECT 1;', 'elsewhere.sum': 'x' });
      await symlink(join(dir, 'elsewhere.sum'), join(dir, 'flotilla.sum'));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: 'flotilla.sum' } });
    });

    it('refuses a Prisma folder that is a symbolic link, and a link inside a Prisma folder', async () => {
      await write({ 'real/20240101000000_init/migration.sql': 'SELECT 1;' });
      const real = join(dir, 'real');
      const elsewhere = await mkdtemp(join(tmpdir(), 'flotilla-elsewhere-'));
      await rm(real, { recursive: true });
      await mkdir(join(elsewhere, '20240101000000_init'), { recursive: true });
      await writeFile(join(elsewhere, '20240101000000_init', 'migration.sql'), 'SELECT 1;');
      await symlink(join(elsewhere, '20240101000000_init'), join(dir, '20240101000000_init'));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', message: expect.stringContaining('symbolic link') });
      await rm(join(dir, '20240101000000_init'));
      await mkdir(join(dir, '20240101000000_init'));
      await symlink(join(elsewhere, '20240101000000_init', 'migration.sql'), join(dir, '20240101000000_init', 'migration.sql'));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: '20240101000000_init/migration.sql' } });
      await rm(elsewhere, { recursive: true, force: true });
    });

    it('refuses .SQL, hidden .sql files, stray SQL in Prisma folders and SQL in other folders', async () => {
      const cases: [Record<string, string>, string][] = [
        [{ '0003_x.SQL': 'SELECT 1;' }, '0003_x.SQL'],
        [{ '0003_x.Sql': 'SELECT 1;' }, '0003_x.Sql'],
        [{ '.0003_x.sql': 'SELECT 1;' }, '.0003_x.sql'],
        [{ '20240101000000_init/migration.SQL': 'SELECT 1;' }, '20240101000000_init/migration.SQL'],
        [{ '20240101000000_init/migration.sql': 'SELECT 1;', '20240101000000_init/down.sql': 'SELECT 2;' }, '20240101000000_init/down.sql'],
        [{ 'archive/0004_old.sql': 'SELECT 1;' }, 'archive/0004_old.sql'],
        [{ 'archive/deeper/0004_old.sql': 'SELECT 1;' }, 'archive/deeper/0004_old.sql'],
        [{ '20240101000000_init/migration.sql': 'SELECT 1;', '20240101000000_init/more/extra.sql': 'SELECT 2;' }, '20240101000000_init/more/extra.sql'],
        [{ '20240101000000_init/notes.txt': 'no migration.sql here' }, '20240101000000_init'],
      ];
      for (const [files, file] of cases) {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir);
        await write({ '0001_a.sql': 'SELECT 1;', ...files });
        expect(await refusedFor(), file).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file } });
      }
    });

    it('still ignores files that are not SQL, hidden folders and folders without SQL', async () => {
      await write({ '0001_a.sql': 'SELECT 1;', 'README.md': '#', 'seed/data.csv': '1,2', '.git/x.sql': 'SELECT 1;', 'notes.txt': 'x' });
      expect((await readMigrationDir(dir)).map((f) => f.id)).toEqual(['0001_a']);
    });

    it('refuses a NUL byte and invalid UTF-8 with the file, the byte offset and the line', async () => {
      await writeFile(join(dir, '0001_a.sql'), Buffer.concat([Buffer.from('SELECT 1;\nSELECT 2;'), Buffer.from([0]), Buffer.from('\nDROP TABLE members;')]));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: '0001_a.sql', byte: 19, line: 2 } });
      expect((await refusedFor()).message).toContain('NUL byte at byte 19');
      await writeFile(join(dir, '0001_a.sql'), Buffer.concat([Buffer.from("SELECT 'caf"), Buffer.from([0xe9]), Buffer.from("';")]));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: '0001_a.sql', byte: 11, line: 1 } });
      await writeFile(join(dir, '0001_a.sql'), Buffer.from("SELECT 'café ☕ 𝄞';"));
      expect((await readMigrationDir(dir))[0]!.sql).toBe("SELECT 'café ☕ 𝄞';");
    });

    it('refuses invalid UTF-8 in a verify file too', async () => {
      await write({ '0001_a.sql': 'SELECT 1;' });
      await writeFile(join(dir, '0001_a.verify.sql'), Buffer.from([0x53, 0xc3, 0x28]));
      expect(await refusedFor()).toMatchObject({ code: 'FLO_MIGRATION_FILE_INVALID', meta: { file: '0001_a.verify.sql', byte: 1 } });
    });
  });
});
