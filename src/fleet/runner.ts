import { spawnGuarded } from '../postgres/child-process.js';
import { describeLoss, describeOverwrite } from '../core/verification.js';
import type { TenantOutcome } from '../core/outcomes.js';
import type { EventSink } from '../core/events.js';
import type { Rollout, RolloutStore, RunnerIdentity } from '../control/rollout-store.js';

export interface RunnerDeps {
  readonly store: RolloutStore;
  /** This process as a runner; its liveness lock is held by the caller for the runner's whole life. */
  readonly runner: RunnerIdentity;
  readonly serverLimits: ReadonlyMap<string, number>;
  /** Upgrades one tenant (lint, backup by policy, migrate, verify); never throws for the tenant's own failure. */
  upgrade(tenant: string, rolloutId: string): Promise<TenantOutcome>;
}

export interface RunnerOptions {
  /** Tenants this runner upgrades at once. */
  readonly concurrency: number;
  readonly emit: EventSink;
  /** Failures tolerated before the rollout halts. */
  readonly budget?: number;
}

const WAIT_MS = 100;

/**
 * One runner working on a rollout until nothing is left for it: several can
 * work on the same rollout at once, from any machine, coordinating only through
 * the control database.
 */
export async function runRollout(deps: RunnerDeps, rolloutId: string, options: RunnerOptions): Promise<void> {
  const runner = deps.runner;
  await deps.store.addRunner(rolloutId, runner);
  const wavesSeen = new Set<number>();
  {
    // A worker that throws stops the others at their next claim, and the error is raised only once all
    // have stopped: what the caller does then (clearing the operation's scratch) never races a worker.
    let stopped = false;
    const worker = async (): Promise<void> => {
      for (;;) {
        if (stopped) return;
        const claim = await deps.store.claim(rolloutId, runner, deps.serverLimits);
        if (claim.kind === 'done') return;
        if (claim.kind === 'wait') {
          await new Promise((r) => setTimeout(r, WAIT_MS));
          continue;
        }
        if (claim.kind === 'canary-check') {
          const exitCode = await runCanaryCheck(claim.command, claim.tenants);
          const passed = exitCode === 0;
          await deps.store.setCanaryCheck(rolloutId, passed ? 'passed' : 'failed');
          options.emit({ event: 'canary.check', rollout: rolloutId, tenants: [...claim.tenants], passed, exitCode });
          if (!passed) await halt(deps, rolloutId, options, `canary check \`${claim.command}\` exited with ${exitCode}`);
          continue;
        }
        if (!wavesSeen.has(claim.wave)) {
          wavesSeen.add(claim.wave);
          options.emit({ event: 'wave.started', rollout: rolloutId, wave: claim.wave, runner: runner.name });
        }
        options.emit({ event: 'tenant.started', rollout: rolloutId, tenant: claim.tenant, server: claim.server, wave: claim.wave, attempt: claim.attempts, runner: runner.name });
        const outcome = await deps.upgrade(claim.tenant, rolloutId);
        await record(deps, rolloutId, outcome, runner.name, options);
        if (outcome.status === 'failed') await checkFailures(deps, rolloutId, claim.wave, claim.tenant, options);
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.max(1, options.concurrency) }, () =>
        worker().catch((error: unknown) => {
          stopped = true;
          throw error;
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

async function record(deps: RunnerDeps, rolloutId: string, outcome: TenantOutcome, runner: string, options: RunnerOptions): Promise<void> {
  if (outcome.status === 'failed') {
    await deps.store.finish(rolloutId, outcome.tenant, {
      state: 'failed',
      versionBefore: null,
      versionAfter: null,
      errorCode: outcome.error.code,
      errorMessage: outcome.error.message,
    });
    options.emit({
      event: 'tenant.failed',
      rollout: rolloutId,
      tenant: outcome.tenant,
      code: outcome.error.code,
      message: outcome.error.message,
      durationMs: Math.round(outcome.durationMs),
      runner,
    });
  } else if ('reason' in outcome) {
    await deps.store.finish(rolloutId, outcome.tenant, { state: 'skipped', versionBefore: null, versionAfter: null, errorMessage: outcome.reason });
    options.emit({ event: 'tenant.skipped', rollout: rolloutId, tenant: outcome.tenant, reason: outcome.reason, durationMs: Math.round(outcome.durationMs), runner });
  } else {
    const state = outcome.status === 'succeeded' ? 'succeeded' : 'skipped';
    await deps.store.finish(rolloutId, outcome.tenant, {
      state,
      versionBefore: outcome.fromVersion,
      versionAfter: outcome.status === 'succeeded' ? outcome.toVersion : outcome.fromVersion,
      backupId: outcome.backup?.id ?? null,
    });
    if (state === 'succeeded') {
      const details = {
        statements: outcome.statements,
        rewritten: outcome.rewritten,
        outsideTransaction: outcome.outsideTransaction,
        splits: outcome.splits.map((s) => `${s.before}: ${s.reason}`),
        verifiedTables: outcome.verification?.tables ?? 0,
        allowedLosses: (outcome.verification?.allowedLosses ?? []).map((l) => `${describeLoss(l)} — ${l.allowedBecause}`),
        overwrites: (outcome.verification?.overwrites ?? []).map(describeOverwrite),
      };
      options.emit({
        event: 'tenant.succeeded',
        rollout: rolloutId,
        tenant: outcome.tenant,
        from: outcome.fromVersion,
        to: outcome.toVersion,
        migrations: outcome.migrations.length,
        durationMs: Math.round(outcome.durationMs),
        backup: outcome.backup?.id ?? null,
        runner,
        details,
      });
    } else {
      options.emit({
        event: 'tenant.skipped',
        rollout: rolloutId,
        tenant: outcome.tenant,
        reason: `already at ${outcome.toVersion ?? 'the target'}`,
        durationMs: Math.round(outcome.durationMs),
        runner,
      });
    }
  }
}

/** A failed canary halts the rollout; so does exceeding the failure budget. */
async function checkFailures(deps: RunnerDeps, rolloutId: string, wave: number, tenant: string, options: RunnerOptions): Promise<void> {
  if (wave === 0) {
    await halt(deps, rolloutId, options, `canary tenant ${tenant} failed`);
    return;
  }
  if (options.budget === undefined) return;
  const rollout = (await deps.store.get(rolloutId)) as Rollout;
  if (rollout.counts.failed > options.budget) {
    await halt(deps, rolloutId, options, `failure budget exceeded: ${rollout.counts.failed} tenants failed, at most ${options.budget} allowed`);
  }
}

async function halt(deps: RunnerDeps, rolloutId: string, options: RunnerOptions, reason: string): Promise<void> {
  if (await deps.store.setStatus(rolloutId, 'halted', reason)) options.emit({ event: 'rollout.halted', rollout: rolloutId, reason });
}

/** Runs the canary check with the canary slugs as arguments (and in FLOTILLA_CANARY_TENANTS); its exit code decides. */
function runCanaryCheck(command: string, tenants: readonly string[]): Promise<number | null> {
  return new Promise((resolve) => {
    // `sh -c` with the slugs as positional parameters ($1, $2, …), not appended to the command's text.
    const child = spawnGuarded('sh', ['-c', command, 'flotilla-canary-check', ...tenants], {
      group: true,
      stdout: 2,
      stderr: 2,
      env: { ...process.env, FLOTILLA_CANARY_TENANTS: tenants.join(',') },
    });
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code));
  });
}
