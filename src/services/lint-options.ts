import type { FlotillaConfig } from '../config/config.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { Finding, LintOptions, LintReport } from '../core/lint/lint.js';
import { lintMigrations } from '../core/lint/lint.js';

/** Lint options from the configuration; `schemaTenants` may be forced (the registry knows whether any exist). */
export function lintOptions(config: FlotillaConfig, schemaTenants?: boolean): LintOptions {
  return {
    schemaTenants: schemaTenants ?? config.lint.schemaTenants ?? config.tenants.defaultKind === 'schema',
    tenantColumn: config.lint.tenantColumn,
    globalTables: config.lint.globalTables,
    engineSetsLockTimeout: !/^0+\s*(ms|s|min|h)?$/.test(config.engine.lockTimeout),
  };
}

export function lintSet(set: MigrationSet, options: LintOptions): LintReport {
  return lintMigrations(set.migrations, options);
}

/** Unallowed errors per migration id, as the engine takes them. */
export function blockingFindings(report: LintReport): Map<string, Finding[]> {
  const result = new Map<string, Finding[]>();
  for (const finding of report.findings) {
    if (finding.severity !== 'error' || finding.allowedBecause !== null) continue;
    result.set(finding.migration, [...(result.get(finding.migration) ?? []), finding]);
  }
  return result;
}
