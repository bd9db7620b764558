import type { AuditEventInput } from '../control/audit-log.js';
import type { Rollout, RolloutTenant } from '../control/rollout-store.js';
import { FlotillaError } from '../core/errors.js';
import type { EventSink } from '../core/events.js';
import type { OperationContext } from '../core/operation.js';
import type { RolloutSelection, RolloutStartOptions } from '../core/outcomes.js';
import type { Tenant } from '../core/tenant.js';
import { assignWaves, failureBudget } from '../core/waves.js';
import { tenantVersions } from '../fleet/bulk-state.js';
import { runRollout } from '../fleet/runner.js';
import { byModel } from '../tenancy/models.js';
import type { ServiceContext } from './context.js';
import type { UpgradeService } from './upgrade.js';
import { assertTarget, endOfRun } from './upgrade.js';

/** Fleet rollouts: created from a selection, worked on by any number of runner processes, resumed after a crash. */
export class RolloutService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly upgrade: UpgradeService,
  ) {}

  /** The tenants a selection names (active ones unless statuses say otherwise), sorted. */
  async select(selection: RolloutSelection, order: 'slug' | 'plan' | 'created' = 'slug'): Promise<Tenant[]> {
    // A tenant another rollout is upgrading is still an active tenant; the engine's lock serializes the two.
    const statuses = selection.statuses ?? ['active', 'upgrading'];
    const all = await this.ctx.registry.listTenants();
    if (!selection.all && !selection.tenants?.length && !selection.tags?.length && !selection.servers?.length) {
      throw new FlotillaError('FLO_USAGE', 'Say which tenants to migrate.', { hint: 'Select all tenants, or some by slug, tag or server.' });
    }
    for (const slug of selection.tenants ?? []) if (!all.some((t) => t.slug === slug)) await this.ctx.registry.getTenant(slug);
    return orderTenants(
      all
        .filter((t) => statuses.includes(t.status))
        .filter((t) => !selection.tenants?.length || selection.tenants.includes(t.slug))
        .filter((t) => !selection.tags?.length || selection.tags.some((tag) => t.tags.includes(tag)))
        .filter((t) => !selection.servers?.length || selection.servers.includes(t.server)),
      order,
    );
  }

  /** Creates a rollout for runners to work on (`flotilla rollout start`). */
  async start(selection: RolloutSelection, options: RolloutStartOptions = {}): Promise<Rollout> {
    return this.ctx.operations.run({ command: 'rollout start', arguments: { ...selection, ...options } }, async () => {
      const rollout = await this.create(selection, options);
      return { result: rollout, record: { runId: rollout.id } };
    });
  }

  /**
   * `flotilla migrate`: a new rollout, worked on by this process to its end, as
   * one operation (killed anywhere in it, it shows as one interrupted migrate).
   */
  async migrate(selection: RolloutSelection, options: RolloutStartOptions & { emit?: EventSink; started?: (rollout: Rollout) => void } = {}): Promise<Rollout> {
    const { emit, started, ...startOptions } = options;
    return this.ctx.operations.run({ command: 'migrate', arguments: { ...selection, ...startOptions } }, async (op) => {
      const created = await this.create(selection, startOptions);
      started?.(created);
      const final = await this.workOn(created, op, { emit });
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  /** Works on a rollout until nothing is left for this process; several processes may run the same rollout. */
  async run(id: string, options: { emit?: EventSink; concurrency?: number } = {}): Promise<Rollout> {
    const rollout = await this.get(id);
    return this.ctx.operations.run({ command: 'rollout run', arguments: { rollout: rollout.id } }, async (op) => {
      const final = await this.workOn(rollout, op, options);
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  /**
   * Continues an unfinished rollout after a crash or a halt: tenants a dead
   * runner left `running` are rechecked against their own history; failed
   * tenants are retried when their error was transient (or all, with `retry: 'all'`).
   */
  async resume(id: string, options: { emit?: EventSink; retry?: 'transient' | 'all' | 'none'; concurrency?: number } = {}): Promise<Rollout> {
    const { registry, operations, runner } = this.ctx;
    const rollout = await this.get(id);
    return operations.run({ command: 'rollout resume', arguments: { rollout: rollout.id, retry: options.retry ?? 'transient' } }, async (op) => {
      // Nothing left to do (resumed again after it finished): said as it is, with nothing run.
      const now = await this.get(rollout.id);
      if ((now.status === 'finished' || now.status === 'cancelled') && (now.counts.failed === 0 || options.retry === 'none')) return { result: now, record: { runId: now.id } };
      const recovered = await registry.rollouts.recover(rollout.id, options.retry ?? 'transient');
      await registry.rollouts.setStatus(rollout.id, 'running', null, ['running', 'halted', 'finished']);
      const name = (await runner.identity()).name;
      options.emit?.({ event: 'rollout.resumed', rollout: rollout.id, runner: name, rechecked: recovered.reset, retried: recovered.retried });
      const final = await this.workOn(await this.get(rollout.id), op, options);
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  /** Stops a rollout: no new tenant starts; tenants running now finish. */
  async cancel(id: string): Promise<Rollout> {
    const rollout = await this.get(id);
    // Starting an operation first puts back the tenants of runners that died, so none stays `upgrading`.
    return this.ctx.operations.run({ command: 'rollout cancel', arguments: { rollout: rollout.id } }, async () => {
      await this.ctx.registry.rollouts.setStatus(rollout.id, 'cancelled', 'cancelled by an operator', ['running', 'halted']);
      return { result: await this.get(rollout.id), record: { runId: rollout.id } };
    });
  }

  async get(id: string): Promise<Rollout> {
    const rollout = await this.ctx.registry.rollouts.get(id);
    if (!rollout) throw new FlotillaError('FLO_ROLLOUT_NOT_FOUND', `No rollout with id ${id}.`, { hint: 'List the rollouts to find its id.', meta: { rollout: id } });
    return rollout;
  }

  list(limit?: number): Promise<Rollout[]> {
    return this.ctx.registry.rollouts.list(limit);
  }

  tenants(id: string): Promise<RolloutTenant[]> {
    return this.ctx.registry.rollouts.tenants(id);
  }

  /** Rollouts left running by a runner that died, or halted: the next command offers to resume them. */
  async unfinished(): Promise<Rollout[]> {
    const { rollouts } = this.ctx.registry;
    const result: Rollout[] = [];
    for (const rollout of await rollouts.unfinished()) if (rollout.status === 'halted' || (await rollouts.liveRunners(rollout.id)) === 0) result.push(rollout);
    return result;
  }

  /** This process's name as a runner (`host:pid:n`), as rollout events and records show it. */
  async runnerName(): Promise<string> {
    return (await this.ctx.runner.identity()).name;
  }

  /**
   * A rollout of the selected tenants, each marked `skipped` when already at
   * the target (read in bulk) or `pending`, placed in a canary wave and waves.
   */
  private async create(selection: RolloutSelection, options: RolloutStartOptions): Promise<Rollout> {
    const { registry } = this.ctx;
    const set = await this.ctx.migrations.current();
    assertTarget(set, options.target);
    const servers = new Map((await registry.listServers()).map((s) => [s.name, s]));
    const selected = await this.select(selection, options.order === 'size' ? 'slug' : (options.order ?? 'slug'));
    let ordered = selected;
    if (options.order === 'size') {
      // Smallest first: the first waves finish (and fail, if they must) quickest.
      const sizes = new Map<string, number>();
      for (const [model, group] of byModel(selected)) for (const [slug, size] of await model.sizes(group, servers)) sizes.set(slug, size);
      ordered = [...selected].sort((a, b) => (sizes.get(a.slug) ?? 0) - (sizes.get(b.slug) ?? 0) || (a.slug < b.slug ? -1 : 1));
    }
    // Tenants sharing a database are read in bulk (one query per database). A tenant with a database of its
    // own would need a connection just to be skipped; the runner connects anyway and its plan skips it then.
    const bulk = byModel(ordered).flatMap(([model, group]) => (model.sharesDatabase ? group : []));
    const versions = await tenantVersions(bulk, servers, set, options.target ?? null);
    const pending = ordered.filter((t) => !versions.get(t.slug)?.atTarget);
    const waves = assignWaves(
      pending.map((t) => t.slug),
      { canary: options.canary, waveSize: options.waveSize },
    );
    const placements = new Map(waves.map((p) => [p.tenant, p]));
    const concurrency = options.concurrency ?? 4;
    const { canary, canaryCheck, waveSize, maxFailures, order } = options;
    const id = await registry.rollouts.create({
      runner: await this.ctx.runner.identity(),
      target: options.target ?? null,
      options: { canary, canaryCheck, waveSize, concurrency, maxFailures, order, budget: failureBudget(maxFailures, pending.length) },
      selection: { ...selection },
      startedBy: this.ctx.actor,
      tenants: ordered.map((t, i) => {
        const placed = placements.get(t.slug);
        const position = placed?.position ?? pending.length + i;
        return { tenant: t.slug, server: t.server, wave: placed?.wave ?? 1, position, state: placed ? 'pending' : 'skipped', versionBefore: versions.get(t.slug)?.version ?? null };
      }),
    });
    return (await registry.rollouts.get(id))!;
  }

  private async workOn(rollout: Rollout, op: OperationContext, options: { emit?: EventSink; concurrency?: number }): Promise<Rollout> {
    const { registry, runner } = this.ctx;
    const started = performance.now();
    const emit = options.emit ?? (() => undefined);
    const set = await this.ctx.migrations.current();
    const servers = await registry.listServers();
    const rows = await registry.rollouts.tenants(rollout.id);
    const inRollout = new Set(rows.map((r) => r.tenant));
    const tenants = new Map((await registry.listTenants()).filter((t) => inRollout.has(t.slug)).map((t) => [t.slug, t]));
    const context = await this.upgrade.context(set, [...tenants.values()]);
    const run = { runId: rollout.id, op, dryRun: false, target: rollout.target ?? undefined, claimedByRollout: true };
    await runRollout(
      {
        store: registry.rollouts,
        runner: await runner.identity(),
        serverLimits: await registry.serverLimits(servers.filter((s) => rows.some((r) => r.server === s.name))),
        // The tenant as the registry has it now: the rollout's claim has just marked it `upgrading`.
        upgrade: async (slug) => this.upgrade.upgradeTenant(await registry.getTenant(slug), context, run),
      },
      rollout.id,
      { concurrency: options.concurrency ?? rollout.options.concurrency, emit, budget: rollout.options.budget },
    );
    const final = await this.get(rollout.id);
    const { succeeded, failed, skipped, pending } = final.counts;
    emit({ event: 'rollout.finished', rollout: final.id, status: final.status, succeeded, failed, skipped, pending, durationMs: Math.round(performance.now() - started) });
    return final;
  }
}

function orderTenants(tenants: readonly Tenant[], order: 'slug' | 'plan' | 'created'): Tenant[] {
  const key = (t: Tenant) => (order === 'plan' ? `${t.plan ?? '\uffff'} ${t.slug}` : order === 'created' ? `${t.createdAt} ${t.slug}` : t.slug);
  return [...tenants].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function endOfRollout(rollout: Rollout): Partial<AuditEventInput> {
  if (rollout.status === 'halted') return { outcome: 'failed', errorCode: 'FLO_ROLLOUT_UNFINISHED', errorMessage: `halted: ${rollout.haltReason ?? ''}` };
  return endOfRun(rollout.counts.failed, rollout.counts.total);
}
