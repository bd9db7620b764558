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

/** The lint of one migration set, computed once per set of options (another set starts afresh). */
export class LintCache {
  private set: MigrationSet | undefined;
  private reports = new Map<string, LintReport>();

  report(set: MigrationSet, options: LintOptions): LintReport {
    if (set !== this.set) {
      this.set = set;
      this.reports = new Map();
    }
    const key = JSON.stringify(options);
    let report = this.reports.get(key);
    if (!report) {
      report = lintSet(set, options);
      this.reports.set(key, report);
    }
    return report;
  }
}

export class DirectorySource implements MigrationSource {
  private parsed: { key: string; set: MigrationSet } | undefined;
  private readonly lints = new LintCache();

  constructor(private readonly dir: string) {}

  async current(): Promise<MigrationSet> {
    const { files, sum } = await readMigrationFiles(this.dir);
    // Parsing is the cost; reading and hashing the files is cheap, so the parsed set is reused while they are unchanged.
    const key = sha256(JSON.stringify([sum ?? null, files.map((f) => [f.path, f.checksum, f.verify?.sql ?? null])]));
    if (this.parsed?.key !== key) this.parsed = { key, set: await buildMigrationSet(this.dir, files, sum) };
    return this.parsed.set;
  }

  lint(set: MigrationSet, options: LintOptions): LintReport {
    return this.lints.report(set, options);
  }
}
