import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../core/bytes.js';
import { keyIdOf, privateKeyFrom, signBytes } from '../core/bundle/signing.js';
import { toFlotillaError } from '../core/errors.js';
import type { Tenant } from '../core/tenant.js';

/** One tenant in an apply's report. */
export interface TenantApplyReport {
  readonly tenant: string;
  readonly kind: string;
  /** upgraded; unchanged (already at the bundle's migrations); failed (left at its previous version); not started (an earlier tenant failed); skipped (not active). */
  readonly status: 'upgraded' | 'unchanged' | 'failed' | 'not started' | 'skipped';
  readonly versionBefore: string | null;
  readonly versionAfter: string | null;
  readonly tablesBefore: number | null;
  readonly rowsBefore: number | null;
  readonly tablesAfter: number | null;
  readonly rowsAfter: number | null;
  /** No table has fewer rows than in the backup taken just before. */
  readonly rowsIntact: boolean | null;
  /** Tables whose rows went down or that are gone: `claims: 800 before, 799 after`. */
  readonly rowDifferences: readonly string[];
  readonly backupId: string | null;
  readonly durationMs: number;
  readonly error: { readonly code: string; readonly message: string; readonly hint: string | null } | null;
  /** The command that puts this tenant back to the backup taken before the apply. */
  readonly restoreCommand: string | null;
  /** Why it was skipped or not started. */
  readonly note: string | null;
}

export interface ApplyReport {
  readonly format: 'flotilla-bundle-report/1';
  readonly outcome: 'installed' | 'failed';
  readonly product: string;
  readonly version: string;
  /** The version installed before (null: no bundle was recorded at this site). */
  readonly previousVersion: string | null;
  readonly bundle: { readonly digest: string; readonly keyId: string; readonly createdAt: string; readonly sizeBytes: number; readonly migrations: number };
  readonly site: { readonly host: string; readonly projectDir: string; readonly flotilla: string };
  readonly environment: {
    readonly servers: readonly { readonly name: string; readonly postgres: string }[];
    readonly pgDump: string;
    readonly freeBytes: number;
    readonly neededBytes: number;
  };
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly tenants: readonly TenantApplyReport[];
  readonly app: { readonly installed: boolean; readonly dir: string | null; readonly files: number; readonly note: string | null };
  readonly restoreCommands: readonly string[];
  /** What the administrator should do next, in plain words. */
  readonly nextSteps: readonly string[];
}

export interface WrittenReport {
  readonly json: string;
  readonly text: string;
  /** The signature of the JSON file by the site's key (null: the site has no key). */
  readonly signature: string | null;
  readonly signedBy: string | null;
}

/** Writes the report as JSON and text under `dir`, and signs the JSON with the site's key when that file exists. */
export async function writeReport(report: ApplyReport, dir: string, siteKey: string, id: string): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const stamp = report.finishedAt.replace(/[-:]/g, '').replace(/\.(\d+)Z$/, '.$1Z');
  const base = join(dir, `${report.product.replace(/[^\w.-]+/g, '-')}-${report.version}-${stamp}-${id.slice(0, 8)}`);
  const json = Buffer.from(`${JSON.stringify(report, null, 2)}\n`, 'utf8');
  await atomicWrite(`${base}.json`, json);
  await atomicWrite(`${base}.txt`, renderReport(report));
  if (!existsSync(siteKey)) return { json: `${base}.json`, text: `${base}.txt`, signature: null, signedBy: null };
  const key = privateKeyFrom(await readFile(siteKey, 'utf8'), siteKey);
  await atomicWrite(`${base}.json.sig`, signBytes(json, key));
  return { json: `${base}.json`, text: `${base}.txt`, signature: `${base}.json.sig`, signedBy: keyIdOf(key) };
}

async function atomicWrite(file: string, content: string | Buffer): Promise<void> {
  await writeFile(`${file}.partial`, content, { flag: 'wx' });
  await rename(`${file}.partial`, file);
}

/** The report as the site's administrator and the vendor's support read it. */
export function renderReport(report: ApplyReport): string {
  const upgraded = report.tenants.filter((t) => t.status === 'upgraded' || t.status === 'unchanged').length;
  const lines = [
    `Flotilla upgrade report: ${report.product} ${report.version}`,
    '',
    `Result:     ${report.outcome === 'installed' ? 'INSTALLED' : 'FAILED'} (${upgraded} of ${report.tenants.length} tenants at the new version)`,
    `Installed before: ${report.previousVersion ?? 'no bundle recorded at this site'}`,
    `Site:       ${report.site.host}, ${report.site.projectDir} (Flotilla ${report.site.flotilla})`,
    `Bundle:     SHA-256 ${report.bundle.digest}, signed by key ${report.bundle.keyId}, built ${report.bundle.createdAt}, ${formatBytes(report.bundle.sizeBytes)}`,
    `PostgreSQL: ${report.environment.servers.map((s) => `${s.name} ${s.postgres}`).join(', ')}; pg_dump ${report.environment.pgDump}`,
    `Disk:       ${formatBytes(report.environment.freeBytes)} free for backups, about ${formatBytes(report.environment.neededBytes)} needed`,
    `Time:       ${report.startedAt} to ${report.finishedAt} (${seconds(report.durationMs)})`,
    '',
    'Tenants:',
    ...table(
      ['tenant', 'result', 'version before', 'after', 'tables', 'rows before', 'rows after', 'rows intact', 'backup', 'time'],
      report.tenants.map((t) => [
        t.tenant,
        t.status,
        t.versionBefore ?? '-',
        t.versionAfter ?? '-',
        t.tablesBefore === null ? '-' : `${t.tablesBefore} -> ${t.tablesAfter ?? '-'}`,
        t.rowsBefore === null ? '-' : String(t.rowsBefore),
        t.rowsAfter === null ? '-' : String(t.rowsAfter),
        t.rowsIntact === null ? '-' : t.rowsIntact ? 'yes' : 'NO',
        t.backupId?.slice(0, 8) ?? '-',
        seconds(t.durationMs),
      ]),
    ),
    '',
  ];
  for (const t of report.tenants) {
    if (t.error) lines.push(`${t.tenant} failed: ${t.error.message}`, ...(t.error.hint ? [`  ${t.error.hint}`] : []));
    if (t.rowDifferences.length > 0) lines.push(`${t.tenant} rows: ${t.rowDifferences.join('; ')}`);
    if (t.note) lines.push(`${t.tenant}: ${t.note}`);
  }
  lines.push(
    `Application: ${report.app.installed ? `installed into ${report.app.dir} (${report.app.files} files)` : `not installed${report.app.note ? `: ${report.app.note}` : ''}`}`,
    '',
  );
  if (report.nextSteps.length > 0) lines.push('What to do now:', ...report.nextSteps.map((s) => `  - ${s}`), '');
  if (report.restoreCommands.length > 0) {
    lines.push(`To put a tenant back as it was before this upgrade, run in ${report.site.projectDir}:`, ...report.restoreCommands.map((c) => `  ${c}`), '');
  }
  return `${lines.join('\n')}\n`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const render = (cells: readonly string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd();
  return [render(header), ...rows.map(render)];
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function notRun(tenant: Tenant, status: TenantApplyReport['status'], note: string | null): TenantApplyReport {
  return {
    tenant: tenant.slug,
    kind: tenant.kind,
    status,
    versionBefore: null,
    versionAfter: null,
    tablesBefore: null,
    rowsBefore: null,
    tablesAfter: null,
    rowsAfter: null,
    rowsIntact: null,
    rowDifferences: [],
    backupId: null,
    durationMs: 0,
    error: null,
    restoreCommand: null,
    note,
  };
}

/** A tenant's error as the report gives it: what happened, and what the administrator does about it. */
export function errorOf(error: unknown): TenantApplyReport['error'] {
  const e = toFlotillaError(error);
  return { code: e.code, message: e.message, hint: "Nothing of this release was kept for this tenant. Send this report to your vendor's support." };
}

/** What the administrator does next, in plain words: nothing when all went well and no tenant was left out. */
export function nextSteps(failed: string | null, tenants: readonly TenantApplyReport[], previous: string | null): string[] {
  const steps: string[] = [];
  for (const t of tenants) {
    if (t.status === 'failed')
      steps.push(`${t.tenant} is still at version ${t.versionAfter ?? '(none)'}${t.rowsIntact ? ' with all its rows' : ''}: nothing of this release was kept for it.`);
    else if (t.rowsIntact === false)
      steps.push(`${t.tenant} was upgraded but has fewer rows than before (${t.rowDifferences.join('; ')}): put it back with its restore command below.`);
    else if (t.status === 'skipped') steps.push(`${t.tenant} was not upgraded (${t.note}); once it is active again, run \`flotilla migrate --tenant ${t.tenant}\` here.`);
  }
  if (failed) {
    steps.push(`The application was not updated (${failed}): it still runs ${previous ? `release ${previous}` : 'the release installed before'}.`);
    steps.push("Send this report (the .json and .txt files) to your vendor's support. When they send a fixed release, apply it: tenants already upgraded are left as they are.");
  }
  return steps;
}
