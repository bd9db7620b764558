import { sha256 } from '../core/checksum.js';
import type { LintOptions, LintReport } from '../core/lint/lint.js';
import type { MigrationSet } from '../core/migration-set.js';
import { buildMigrationSet, readMigrationFiles } from '../core/migration-set.js';
import { lintSet } from './lint-options.js';

/**
 * Where the services get the tenants' migrations: a directory, read again by
 * every operation (so a long-lived process sees new files), parsed only when
 * its files changed. A signed bundle will be another source of the same shape.
 */
export interface MigrationSource {
  /** The migrations, checked against flotilla.sum and parsed. */
  current(): Promise<MigrationSet>;
  /** The lint of a set, computed once per set and options. */
  lint(set: MigrationSet, options: LintOptions): LintReport;
}

export class DirectorySource implements MigrationSource {
  private parsed: { key: string; set: MigrationSet; lint: Map<string, LintReport> } | undefined;

  constructor(private readonly dir: string) {}

  async current(): Promise<MigrationSet> {
    const { files, sum } = await readMigrationFiles(this.dir);
    // Parsing is the cost; reading and hashing the files is cheap, so the parsed set is reused while they are unchanged.
    const key = sha256(JSON.stringify([sum ?? null, files.map((f) => [f.path, f.checksum, f.verify?.sql ?? null])]));
    if (this.parsed?.key !== key) this.parsed = { key, set: await buildMigrationSet(this.dir, files, sum), lint: new Map() };
    return this.parsed.set;
  }

  lint(set: MigrationSet, options: LintOptions): LintReport {
    const key = JSON.stringify(options);
    const cache = this.parsed?.set === set ? this.parsed.lint : new Map<string, LintReport>();
    let report = cache.get(key);
    if (!report) {
      report = lintSet(set, options);
      cache.set(key, report);
    }
    return report;
  }
}
