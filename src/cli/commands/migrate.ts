import type { Command } from 'commander';
import { Option } from 'commander';
import { createInterface } from 'node:readline/promises';
import { FlotillaError } from '../../core/errors.js';
import type { Flotilla } from '../../flotilla.js';
import type { RolloutSelection, RolloutStartOptions, TenantOutcome } from '../../core/outcomes.js';
import type { RolloutEvent } from '../../core/events.js';
import type { Rollout } from '../../control/rollout-store.js';
import type { Finding } from '../../core/lint/lint.js';
import type { TenantStatus } from '../../core/tenant.js';
import { TENANT_STATUSES } from '../../core/tenant.js';
import type { GlobalOptions } from '../context.js';
import { repeatable, repeatableChoice, withFlotilla } from '../context.js';
import { countOrShare, idPrefix, optionalFlag, parseFlag, serverName, slugs, tag, version, wholeNumber } from '../flags.js';
import { describeOutcome } from '../describe-outcome.js';
import { line, printJson, printJsonLine, printTable } from '../output.js';
import { RolloutProgress } from '../progress.js';

interface MigrateFlags {
  tenant?: string[];
  all?: boolean;
  tag?: string[];
  server?: string[];
  status?: TenantStatus[];
  to?: string;
  canary?: string;
  canaryCheck?: string;
  waveSize?: string;
  concurrency?: string;
  maxFailures?: string;
  order?: 'slug' | 'plan' | 'created' | 'size';
  dryRun?: boolean;
  resume?: string;
  join?: string;
  retryFailed?: boolean;
  allowOutOfOrder?: boolean;
  json?: boolean;
}

export function registerMigrateCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('status')
    .description('every tenant with its version, pending migrations and problems')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const problems = await withFlotilla(globals(), async (flotilla) => {
        const states = await flotilla.status.fleet();
        if (options.json) printJson(states);
        else if (states.length === 0) line('No tenants yet: create one with `flotilla tenant create <slug>`.');
        else
          printTable(
            ['tenant', 'kind', 'status', 'version', 'applied', 'pending', 'problems'],
            states.map((s) => [s.slug, s.kind, s.status, s.version, s.applied, s.pending, s.problems.map((p) => `${p.code}: ${p.message}`).join('\n') || null]),
          );
        return states.filter((s) => s.problems.length > 0).length;
      });
      if (problems > 0) process.exitCode = 1;
    });

  program
    .command('migrate')
    .description('upgrade tenants as a rollout: canary first, in waves, bounded concurrency, a failure budget, resumable')
    .option('--tenant <slug>', 'a tenant (repeatable)', repeatable)
    .option('--all', 'every active tenant')
    .option('--tag <tag>', 'tenants with this tag (repeatable)', repeatable)
    .option('--server <name>', 'tenants on this server (repeatable)', repeatable)
    .option('--status <status>', `tenants in this status (repeatable; default active): ${TENANT_STATUSES.join(', ')}`, repeatableChoice(TENANT_STATUSES))
    .option('--to <version>', 'stop at this version (default: the newest)')
    .option('--canary <n|n%|slugs>', 'upgrade these first; the rest starts only when they all succeeded')
    .option('--canary-check <command>', 'run after the canary (slugs as arguments); the rest starts only if it exits 0')
    .option('--wave-size <n>', 'after the canary, upgrade in waves of n tenants')
    .option('--concurrency <n>', 'tenants upgraded at once, across all runners', '4')
    .option('--max-failures <n|n%>', 'halt once more tenants than this failed')
    .addOption(new Option('--order <order>', 'the order tenants are upgraded in (size: smallest first)').choices(['slug', 'plan', 'created', 'size']).default('slug'))
    .option('--dry-run', 'show what each group of tenants would get, change nothing')
    .option('--resume <rollout>', 'finish an unfinished rollout (after a crash or a halt)')
    .option('--join <rollout>', 'add this process as one more runner of a running rollout')
    .option('--retry-failed', 'with --resume: retry every failed tenant, not only those that failed to connect')
    .option('--allow-out-of-order', 'apply pending migrations older than the newest applied one')
    .option('--json', 'one JSON event per line')
    .action(async (flags: MigrateFlags) => {
      checkFlags(flags);
      const selection: RolloutSelection = { tenants: flags.tenant, all: flags.all, tags: flags.tag, servers: flags.server, statuses: flags.status };
      const selected = Boolean(flags.all || flags.tenant?.length || flags.tag?.length || flags.server?.length);
      if (!selected && !flags.resume && !flags.join) {
        throw new FlotillaError('FLO_USAGE', 'Say which tenants to migrate: --all, --tenant <slug>, --tag <tag> or --server <name> (or --resume/--join <rollout>).', {
          hint: 'For example `flotilla migrate --all --canary 2 --max-failures 5%`.',
        });
      }
      const live = !flags.json && process.stdout.isTTY === true;
      await withFlotilla(globals(), async (flotilla) => {
        if (flags.dryRun) return dryRun(flotilla, selection, flags);
        const output = eventOutput(live);
        let rollout: Rollout;
        try {
          if (flags.resume) rollout = await flotilla.rollouts.resume(flags.resume, { emit: output.emit, retry: flags.retryFailed ? 'all' : 'transient' });
          else if (flags.join) {
            const joining = await flotilla.rollouts.get(flags.join);
            output.emit({ event: 'rollout.joined', rollout: joining.id, runner: await flotilla.rollouts.runnerName() });
            rollout = await flotilla.rollouts.run(joining.id, { emit: output.emit });
          } else {
            const unfinished = await offerResume(flotilla, live, selection, flags.to);
            if (unfinished) rollout = await flotilla.rollouts.resume(unfinished.id, { emit: output.emit });
            else {
              rollout = await flotilla.rollouts.migrate(selection, { ...startOptions(flags), emit: output.emit, started: output.started });
            }
          }
        } finally {
          output.stop();
        }
        if (live) await summary(flotilla, rollout);
        if (rollout.status === 'halted') process.exitCode = 11;
        else if (rollout.counts.failed > 0) process.exitCode = 6;
      });
    });
}

/** Every flag parsed and bounded before anything runs. */
function checkFlags(flags: MigrateFlags): void {
  slugs(flags.tenant);
  for (const value of flags.tag ?? []) parseFlag('--tag', value, tag, 'beta');
  for (const value of flags.server ?? []) parseFlag('--server', value, serverName, 'eu-west');
  optionalFlag('--to', flags.to, version, '0042');
  optionalFlag('--resume', flags.resume, idPrefix, '3f2a9c1d');
  optionalFlag('--join', flags.join, idPrefix, '3f2a9c1d');
  optionalFlag('--max-failures', flags.maxFailures, countOrShare, '5%');
  // A count, a share, or slugs of selected tenants.
  if (flags.canary !== undefined && !countOrShare.safeParse(flags.canary).success)
    slugs(
      flags.canary
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  startOptions(flags);
}

function startOptions(flags: MigrateFlags): RolloutStartOptions {
  return {
    target: flags.to,
    canary: flags.canary,
    canaryCheck: flags.canaryCheck,
    waveSize: optionalFlag('--wave-size', flags.waveSize, wholeNumber(1, 1_000_000), '50'),
    concurrency: optionalFlag('--concurrency', flags.concurrency, wholeNumber(1, 1000), '4'),
    maxFailures: flags.maxFailures,
    order: flags.order,
  };
}

/** JSON lines (not a terminal, or --json), or the live display. */
function eventOutput(live: boolean): { emit: (e: RolloutEvent) => void; started: (r: Rollout) => void; stop: () => void } {
  if (!live) {
    const emit = (event: RolloutEvent) => printJsonLine({ ...event, at: new Date().toISOString() });
    return {
      emit,
      started: (r) =>
        emit({ event: 'rollout.started', rollout: r.id, tenants: r.counts.total, pending: r.counts.pending, skipped: r.counts.skipped, waves: r.waves, startedBy: r.startedBy }),
      stop: () => undefined,
    };
  }
  const progress = new RolloutProgress();
  return {
    emit: (event) => progress.handle(event),
    started: (r) => {
      line(`Rollout ${r.id}: ${r.counts.pending} tenants to upgrade, ${r.counts.skipped} already at the target.`);
      progress.start(r.counts.total, r.counts.pending, r.counts.skipped);
    },
    stop: () => progress.stop(),
  };
}

/**
 * An unfinished rollout is resumed rather than started again. The same command
 * run again (same selection, same target) resumes it: a migrate that was killed
 * is finished by running it again. Another one is asked about on a terminal,
 * refused otherwise.
 */
async function offerResume(flotilla: Flotilla, live: boolean, selection: RolloutSelection, target: string | undefined): Promise<Rollout | undefined> {
  const [unfinished] = await flotilla.rollouts.unfinished();
  if (!unfinished) return undefined;
  if (unfinished.status === 'running' && sameSelection(unfinished.selection, selection) && (unfinished.target ?? undefined) === target) return unfinished;
  const what = `Rollout ${unfinished.id} is unfinished (${unfinished.status}${unfinished.haltReason ? `: ${unfinished.haltReason}` : ''}; ${unfinished.counts.pending + unfinished.counts.running} tenants left, ${unfinished.counts.failed} failed).`;
  if (!live) {
    throw new FlotillaError('FLO_ROLLOUT_UNFINISHED', what, {
      hint: `Resume it with \`flotilla migrate --resume ${unfinished.id}\`, or cancel it with \`flotilla rollout cancel ${unfinished.id}\`.`,
      meta: { rollout: unfinished.id },
    });
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await rl.question(`${what} Resume it? [Y/n] `);
  rl.close();
  if (/^n/i.test(answer.trim())) throw new FlotillaError('FLO_ROLLOUT_UNFINISHED', what, { hint: `Cancel it first with \`flotilla rollout cancel ${unfinished.id}\`.` });
  return unfinished;
}

function sameSelection(recorded: Record<string, unknown>, selection: RolloutSelection): boolean {
  const normal = (value: Record<string, unknown>) =>
    JSON.stringify(
      Object.entries(value)
        .filter(([, v]) => v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  return normal(recorded) === normal({ ...selection });
}

async function summary(flotilla: Flotilla, rollout: Rollout): Promise<void> {
  const { counts } = rollout;
  line();
  printTable(
    ['rollout', 'status', 'succeeded', 'failed', 'skipped', 'left'],
    [[rollout.id, rollout.status, counts.succeeded, counts.failed, counts.skipped, counts.pending + counts.running]],
  );
  if (rollout.haltReason) line(`Halted: ${rollout.haltReason}`);
  const failed = (await flotilla.rollouts.tenants(rollout.id)).filter((t) => t.state === 'failed');
  if (failed.length > 0)
    printTable(
      ['failed tenant', 'error'],
      failed.slice(0, 20).map((t) => [t.tenant, `${t.errorCode}: ${t.errorMessage?.split('\n')[0]}`]),
    );
}

/** The plan per tenant, grouped: 2,000 identical tenants read as one line with a count. */
async function dryRun(flotilla: Flotilla, selection: RolloutSelection, flags: MigrateFlags): Promise<void> {
  const tenants = await flotilla.rollouts.select(selection);
  const report = await flotilla.upgrade.migrate({ tenants: tenants.map((t) => t.slug), dryRun: true, allowOutOfOrder: flags.allowOutOfOrder, target: flags.to });
  const lint = await flotilla.lint.report();
  const summarize = (outcome: TenantOutcome) => summarizeOutcome(outcome, lint.findings);
  const groups = new Map<string, { outcome: TenantOutcome; tenants: string[] }>();
  for (const outcome of report.outcomes) {
    const key = JSON.stringify(
      outcome.status === 'failed' ? { ...summarize(outcome), error: { code: outcome.error.code, message: outcome.error.message.replace(outcome.tenant, '') } } : summarize(outcome),
    );
    const group = groups.get(key) ?? { outcome, tenants: [] };
    group.tenants.push(outcome.tenant);
    groups.set(key, group);
  }
  if (flags.json) {
    printJson([...groups.values()].map((g) => ({ count: g.tenants.length, tenants: g.tenants, ...summarize(g.outcome) })));
    return;
  }
  for (const group of groups.values()) {
    const names = group.tenants.length > 5 ? `${group.tenants.slice(0, 5).join(', ')}, …` : group.tenants.join(', ');
    line(`${group.tenants.length} tenant${group.tenants.length > 1 ? 's' : ''} (${names}):`);
    line(`  ${describeOutcome({ ...group.outcome, tenant: 'each' } as TenantOutcome)}`);
    const findings = summarize(group.outcome).lint as Record<string, number> | undefined;
    if (findings && Object.keys(findings).length > 0)
      line(
        `    lint: ${Object.entries(findings)
          .map(([code, n]) => `${code} ×${n}`)
          .join(', ')}`,
      );
  }
  if (report.failed > 0) process.exitCode = 6;
}

/** What a dry run says of one tenant: versions, pending migrations, their lint findings (by code), the backup decision. */
function summarizeOutcome(outcome: TenantOutcome, findings: readonly Finding[]): Record<string, unknown> {
  if (outcome.status === 'failed') return { status: 'failed', error: outcome.error.toJSON() };
  if ('reason' in outcome) return { status: 'skipped', reason: outcome.reason };
  const pending = new Set(outcome.migrations);
  const lint: Record<string, number> = {};
  for (const f of findings) if (pending.has(f.migration)) lint[f.code] = (lint[f.code] ?? 0) + 1;
  return {
    status: outcome.status,
    from: outcome.fromVersion,
    to: outcome.toVersion,
    migrations: outcome.migrations,
    lint,
    backup: outcome.backup?.reasons ?? null,
    rewritten: outcome.rewritten,
    outsideTransaction: outcome.outsideTransaction,
  };
}
