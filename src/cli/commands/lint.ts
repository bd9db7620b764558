import type { Command } from 'commander';
import { RULES } from '../../core/lint/codes.js';
import type { Finding } from '../../core/lint/lint.js';
import type { GlobalOptions } from '../context.js';
import { cliConfig } from '../context.js';
import { line, printJson, printTable } from '../output.js';

export function registerLintCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('lint')
    .description('check migrations for destructive, data-dependent, locking, transaction, compatibility and tenancy problems (no database needed)')
    .option('--schema-tenants', 'report hard-coded schemas as for schema tenants (default: lint.schemaTenants, or tenants.defaultKind = schema)')
    .option('--codes', 'list every code with its severity and what to write instead')
    .option('--json', 'print findings as JSON')
    .action(async (options: { schemaTenants?: boolean; codes?: boolean; json?: boolean }) => {
      if (options.codes) {
        const codes = Object.entries(RULES).map(([code, rule]) => ({ code, ...rule }));
        if (options.json) return printJson(codes);
        return printTable(
          ['code', 'severity', 'family', 'what', 'instead'],
          codes.map((c) => [c.code, c.severity, c.family, c.title, c.instead]),
        );
      }
      const config = await cliConfig(globals());
      const [{ loadMigrationSet }, { lintOptions, lintSet }] = await Promise.all([import('../../core/migration-set.js'), import('../../services/lint-options.js')]);
      const set = await loadMigrationSet(config.migrationsDir);
      const report = lintSet(set, lintOptions(config, options.schemaTenants || undefined));
      if (options.json) printJson(report);
      else printReport(report.findings, report);
      if (report.errors > 0) process.exitCode = 1;
    });
}

function printReport(findings: readonly Finding[], totals: { errors: number; warnings: number; files: number; statements: number }): void {
  for (const f of findings) {
    const allowed = f.allowedBecause !== null ? ` (allowed: ${f.allowedBecause})` : '';
    line(`${f.file}:${f.line}  ${f.code} ${f.severity}${allowed}  ${f.message}`);
    line(`    ${f.statement}`);
    if (f.allowedBecause === null) line(`    instead: ${f.instead}`);
  }
  const byCode = new Map<string, number>();
  for (const f of findings) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  if (findings.length > 0) {
    line();
    printTable(
      ['code', 'findings', 'what'],
      [...byCode].sort().map(([code, n]) => [code, n, RULES[code as keyof typeof RULES].title]),
    );
  }
  line(`${totals.files} files, ${totals.statements} statements: ${totals.errors} errors, ${totals.warnings} warnings not allowed.`);
}
