import { posix } from 'node:path';
import type { LintOptions, LintReport } from '../core/lint/lint.js';
import type { MigrationDirEntry, MigrationFs } from '../core/migration-file.js';
import type { MigrationSet } from '../core/migration-set.js';
import { loadMigrationSet } from '../core/migration-set.js';
import { MIGRATIONS_FOLDER } from '../core/bundle/manifest.js';
import type { MigrationSource } from './migration-source.js';
import { LintCache } from './migration-source.js';

/** Where a bundle's migrations appear to be, in messages: they are never written to disk. */
const ROOT = `/bundle/${MIGRATIONS_FOLDER}`;

/**
 * The migrations of a verified bundle, read from memory: the same checks
 * (flotilla.sum, parsing) as a directory, and nothing ever extracted.
 */
export class BundleSource implements MigrationSource {
  private set: Promise<MigrationSet> | undefined;
  private readonly lints = new LintCache();
  private readonly files: ReadonlyMap<string, Buffer>;

  constructor(bundleFiles: ReadonlyMap<string, Buffer>) {
    const prefix = `${MIGRATIONS_FOLDER}/`;
    this.files = new Map([...bundleFiles].filter(([path]) => path.startsWith(prefix)).map(([path, bytes]) => [`${ROOT}/${path.slice(prefix.length)}`, bytes]));
  }

  current(): Promise<MigrationSet> {
    this.set ??= loadMigrationSet(ROOT, memoryFs(this.files));
    return this.set;
  }

  lint(set: MigrationSet, options: LintOptions): LintReport {
    return this.lints.report(set, options);
  }
}

/** A read-only file system over paths → bytes, shaped as migration discovery reads one. */
function memoryFs(files: ReadonlyMap<string, Buffer>): MigrationFs {
  return {
    async readdir(path) {
      const dir = posix.normalize(path);
      const names = new Map<string, boolean>();
      for (const file of files.keys()) {
        if (!file.startsWith(`${dir}/`)) continue;
        const [name, ...rest] = file.slice(dir.length + 1).split('/');
        names.set(name!, (names.get(name!) ?? false) || rest.length > 0);
      }
      if (names.size === 0 && dir !== ROOT) throw Object.assign(new Error(`ENOENT: ${dir}`), { code: 'ENOENT' });
      return [...names].map(([name, isDir]): MigrationDirEntry => ({ name, isDirectory: () => isDir, isSymbolicLink: () => false }));
    },
    async readFile(path) {
      const bytes = files.get(posix.normalize(path));
      if (!bytes) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return bytes;
    },
  };
}
