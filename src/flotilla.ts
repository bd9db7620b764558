import type pg from 'pg';
import { fileURLToPath } from 'node:url';
import type { ResolvedConfig } from './config/config.js';
import { loadConfig } from './config/config.js';
import type { ErrorCode } from './core/errors.js';
import { FlotillaError, isFlotillaError } from './core/errors.js';
import type { MigrationSet } from './core/migration-set.js';
import { buildMigrationSet, loadMigrationSet, readMigrationFiles } from './core/migration-set.js';
import { sha256 } from './core/checksum.js';
import { plan } from './core/plan.js';
import { compareVersions, newestVersion } from './core/migration-file.js';
import { assertSlug, assertSlugReference } from './core/slug.js';
import { quoteIdent } from './core/sql/quote.js';
import { lockHolders } from './postgres/advisory-lock.js';
import { readHistories } from './postgres/bulk-history.js';
import { SessionPools } from './postgres/session-pools.js';
import { processTag } from './postgres/process-tag.js';
import { connect, withClient } from './postgres/connect.js';
import type { EmbeddedServer } from './postgres/embedded.js';
import { startEmbedded } from './postgres/embedded.js';
import type { EngineOptions, MigrationTarget, TargetResult } from './engine/migrate-target.js';
import { migrateTarget } from './engine/migrate-target.js';
import { ensureDatabase } from './postgres/provision.js';
import { adminDatabase, databaseOf, parseServerUrl, redactUrl, splitPassword, withDatabase } from './postgres/server-url.js';
import { CONTROL_SCHEMA, Registry } from './control/registry.js';
import type { Server, Tenant, TenantKind } from './core/tenant.js';
import { MAIN_SERVER, SERVER_NAME_PATTERN } from './core/tenant.js';

export { MAIN_SERVER };
import { byDatabase, migrationTarget, placeTenant } from './tenancy/placement.js';
import { provisionTenant } from './services/provisioning.js';
import { Operations } from './services/operations.js';
import type { OperationContext } from './services/operations.js';
import { OwnedStorage } from './tenancy/owned-storage.js';
import { claimTenantSchemas, ensureTenantRole } from './tenancy/tenant-storage.js';
import { restoreBackup } from './services/restore.js';
import type { Finding, LintOptions, LintReport } from './core/lint/lint.js';
import type { AuditEvent, AuditEventInput } from './control/audit-log.js';
import { BackupService } from './services/backup-service.js';
import { currentActor } from './control/audit-log.js';
import type { EventSink } from './core/events.js';
import { tenantVersions } from './fleet/bulk-state.js';
import { tenantSizes } from './fleet/tenant-sizes.js';
import type { Rollout, RolloutTenant, RunnerIdentity } from './control/rollout-store.js';
import { becomeRunner, runRollout } from './fleet/runner.js';
import { assignWaves, failureBudget } from './core/waves.js';
import type { PendingPart } from './core/schedule.js';
import { backupRisks } from './core/backup-risk.js';
import { describeLoss, describeOverwrite } from './core/verification.js';
import type { Backup, BackupStrategy } from './control/backup-catalog.js';
import { blockingFindings, lintOptions, lintSet } from './services/lint-options.js';

const CONTROL_MIGRATIONS = fileURLToPath(new URL('./control/migrations', import.meta.url));

export interface CreateTenantInput {
  readonly slug: string;
  readonly name?: string;
  readonly kind?: TenantKind;
  readonly server?: string;
  readonly plan?: string;
  readonly settings?: Record<string, unknown>;
  /** Labels a rollout can select by (`migrate --tag`). */
  readonly tags?: readonly string[];
}

export interface MigrateOptions {
  /** Slugs to migrate; with neither this nor `all`, nothing is selected. */
  readonly tenants?: readonly string[];
  /** Every active tenant. */
  readonly all?: boolean;
  readonly dryRun?: boolean;
  readonly allowOutOfOrder?: boolean;
  /** Stop at this version (default: the newest migration). */
  readonly target?: string;
  /** Called as each tenant finishes, for live output. */
  readonly onTenant?: (outcome: TenantOutcome) => void;
}

/** Why a backup was (or, in a dry run, would be) taken before a tenant's upgrade. */
export interface BackupDecision {
  readonly reasons: readonly string[];
  /** The backup taken; null in a dry run. */
  readonly id: string | null;
}

export type TenantOutcome =
  | ({ readonly status: 'succeeded' | 'skipped' | 'planned'; readonly backup: BackupDecision | null } & TargetResult)
  | { readonly tenant: string; readonly status: 'failed'; readonly error: FlotillaError; readonly durationMs: number }
  | { readonly tenant: string; readonly status: 'skipped'; readonly reason: string; readonly durationMs: number };

export interface MigrateReport {
  readonly runId: string;
  readonly outcomes: readonly TenantOutcome[];
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

export interface RolloutSelection {
  readonly tenants?: readonly string[];
  readonly all?: boolean;
  readonly tags?: readonly string[];
  readonly servers?: readonly string[];
  /** Tenant statuses to include (default: active). */
  readonly statuses?: readonly Tenant['status'][];
}

export interface RolloutStartOptions {
  /** Stop at this version (default: the newest migration). */
  readonly target?: string;
  /** `3`, `5%` or `acme,globex`: upgraded first; the rest waits until they all succeeded. */
  readonly canary?: string;
  /** A command that receives the canary slugs and must exit 0 before the rest starts. */
  readonly canaryCheck?: string;
  readonly waveSize?: number;
  /** Tenants upgraded at once, across every runner of the rollout (default 4). */
  readonly concurrency?: number;
  /** `2` or `5%`: once more tenants than this failed, no new tenant starts. */
  readonly maxFailures?: string;
  /** slug, plan, created, or size (smallest first). */
  readonly order?: 'slug' | 'plan' | 'created' | 'size';
}

function orderTenants(tenants: readonly Tenant[], order: 'slug' | 'plan' | 'created'): Tenant[] {
  const key = (t: Tenant) => (order === 'plan' ? `${t.plan ?? '\uffff'} ${t.slug}` : order === 'created' ? `${t.createdAt} ${t.slug}` : t.slug);
  return [...tenants].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

interface UpgradeContext {
  readonly set: MigrationSet;
  readonly servers: ReadonlyMap<string, Server>;
  readonly lint: LintReport;
  readonly lintErrors: ReadonlyMap<string, readonly Finding[]>;
  /** The schemas the registry records as each schema tenant's own, by tenant id. */
  readonly ownedSchemas: ReadonlyMap<string, readonly string[]>;
  /** The roles the registry records for schema tenants, by tenant id. */
  readonly ownedRoles: ReadonlyMap<string, readonly string[]>;
}

export interface StatusProblem {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface TenantState {
  readonly slug: string;
  readonly kind: TenantKind;
  readonly status: Tenant['status'];
  readonly server: string;
  readonly database: string;
  readonly schema: string;
  readonly version: string | null;
  readonly applied: number;
  readonly pending: number;
  readonly problems: readonly StatusProblem[];
}

/**
 * The library: a control plane, its servers and tenants, and the engine that
 * migrates them. The CLI is a thin layer over these methods.
 */
export class Flotilla {
  private readonly backups: BackupService;
  /** Every database, schema and file Flotilla makes or removes goes through here, under the registry's claims. */
  private readonly storage: OwnedStorage;
  /** Every mutating call goes through here: recorded start and end, interrupted ones cleared first. */
  private readonly operations: Operations;

  private constructor(
    readonly config: ResolvedConfig,
    readonly registry: Registry,
    private readonly serverUrl: string,
    private readonly controlDatabase: string,
    private readonly embedded: EmbeddedServer | undefined,
  ) {
    this.storage = new OwnedStorage(registry.storage, (name) => registry.serverUrl(name));
    this.backups = new BackupService(registry, this.storage, config.backup);
    this.operations = new Operations({
      registry,
      storage: this.storage,
      actor: currentActor(),
      liveness: async () => {
        const runner = await this.runnerSession();
        return { key: runner.identity.key, alive: () => runner.alive };
      },
    });
  }

  /** Opens the control plane (creating and migrating it on first use), on the configured server or the embedded one. */
  static async open(options: { config?: ResolvedConfig; cwd?: string; configFile?: string } = {}): Promise<Flotilla> {
    const config = options.config ?? (await loadConfig({ cwd: options.cwd, file: options.configFile }));
    const embedded = config.databaseUrl ? undefined : await startEmbedded(config.embedded.dataDir);
    try {
      const given = config.databaseUrl ?? embedded!.url;
      const controlDatabase = (config.databaseUrl ? databaseOf(given) : undefined) ?? 'flotilla';
      const serverUrl = withDatabase(given, controlDatabase);
      await bootstrapControlDatabase(serverUrl, controlDatabase);
      const registry = Registry.open(serverUrl, controlDatabase);
      try {
        await registry.upsertMainServer(serverUrl);
        await registry.separateServerPasswords();
        // The control database is Flotilla's own: no tenant can ever be given its name.
        const control = { server: MAIN_SERVER, kind: 'database', name: controlDatabase } as const;
        if (!(await registry.storage.find(control))) await registry.storage.claim(control, { purpose: 'control' }).catch(() => undefined);
      } catch (error) {
        await registry.close();
        throw error;
      }
      return new Flotilla(config, registry, serverUrl, controlDatabase, embedded);
    } catch (error) {
      await embedded?.release();
      throw error;
    }
  }

  /**
   * This process as a rollout runner: a session of the control database holding
   * its liveness lock until close(). Others see the runner alive while it is held;
   * a runner killed with SIGKILL loses its session, and with it the lock.
   */
  private async runner(): Promise<RunnerIdentity> {
    return (await this.runnerSession()).identity;
  }

  private async runnerSession(): Promise<{ client: pg.Client; identity: RunnerIdentity; alive: boolean }> {
    // A session that broke is replaced for what starts next (what runs now stops at its next check).
    const current = this.liveness ? await this.liveness.catch(() => undefined) : undefined;
    if (this.liveness && !current?.alive) {
      await current?.client.end().catch(() => undefined);
      this.liveness = undefined;
    }
    this.liveness ??= (async () => {
      const client = await connect(this.serverUrl, this.controlDatabase, `flotilla runner ${processTag()}`);
      const session = { client, identity: await becomeRunner(client), alive: true };
      // A broken session releases the liveness lock: others may then take this process's work for dead.
      client.on('error', () => (session.alive = false));
      client.on('end', () => (session.alive = false));
      return session;
    })();
    return this.liveness;
  }

  /** This process's name as a runner (`host:pid:n`), as rollout events and records show it. */
  async runnerName(): Promise<string> {
    return (await this.runner()).name;
  }

  private liveness: Promise<{ client: pg.Client; identity: RunnerIdentity; alive: boolean }> | undefined;
  private readonly sessions = new SessionPools();

  async close(): Promise<void> {
    await this.sessions.close();
    if (this.liveness) await (await this.liveness).client.end().catch(() => undefined);
    await this.registry.close();
    await this.embedded?.release();
  }

  /** The URL of the server holding the control database, without its password. */
  get controlUrl(): string {
    return redactUrl(this.serverUrl);
  }

  /**
   * The migrations directory, read, checked against flotilla.sum and parsed.
   * Read again by every operation, so a long-lived process sees new files.
   */
  async migrations(): Promise<MigrationSet> {
    const { files, sum } = await readMigrationFiles(this.config.migrationsDir);
    // Parsing is the cost; reading and hashing the files is cheap, so the parsed set is reused while they are unchanged.
    const key = sha256(JSON.stringify([sum ?? null, files.map((f) => [f.path, f.checksum, f.verify?.sql ?? null])]));
    if (this.parsed?.key !== key) this.parsed = { key, set: await buildMigrationSet(this.config.migrationsDir, files, sum), lint: new Map() };
    return this.parsed.set;
  }

  private parsed: { key: string; set: MigrationSet; lint: Map<string, LintReport> } | undefined;

  /** Lint of the current set, computed once per set and options. */
  private lintOf(set: MigrationSet, options: LintOptions): LintReport {
    const key = JSON.stringify(options);
    const cache = this.parsed?.set === set ? this.parsed.lint : new Map<string, LintReport>();
    let report = cache.get(key);
    if (!report) {
      report = lintSet(set, options);
      cache.set(key, report);
    }
    return report;
  }

  /**
   * Registers a server tenants can be placed on, once its connection works. Its
   * password is kept apart from its URL and never shown. Registering the same
   * name and URL again is accepted as done.
   */
  async addServer(name: string, url: string): Promise<Server> {
    if (!SERVER_NAME_PATTERN.test(name)) {
      throw new FlotillaError('FLO_USAGE', `Invalid server name ${JSON.stringify(name)}.`, {
        hint: 'Use a lowercase letter first, then lowercase letters, digits or "-" (for example "eu-west-2").',
        meta: { server: name },
      });
    }
    parseServerUrl(url);
    return this.operations.run({ command: 'server add', arguments: { name, url } }, async () => {
      const existing = (await this.registry.listServers()).find((s) => s.name === name);
      // Run again after it was killed: done already (the same URL and password; anything else is another server).
      const same = (a: string, b: string) => JSON.stringify(splitPassword(a)) === JSON.stringify(splitPassword(b));
      if (existing && name !== MAIN_SERVER && same(existing.url, url)) return { result: publicServer(existing) };
      await withClient(url, adminDatabase(url), async () => undefined);
      return { result: publicServer(await this.registry.addServer(name, url)) };
    });
  }

  /** The registered servers; their URLs without passwords. */
  async listServers(): Promise<Server[]> {
    return (await this.registry.listServers()).map(publicServer);
  }

  listTenants(): Promise<Tenant[]> {
    return this.registry.listTenants();
  }

  getTenant(slug: string): Promise<Tenant> {
    return this.registry.getTenant(slug);
  }

  /**
   * Creates the tenant's database or schema, applies every migration and
   * registers it as active. On any failure what was created is removed and the
   * tenant is not registered; if the process is killed, the next command does
   * that, and running the same create again then makes the tenant.
   */
  async createTenant(input: CreateTenantInput): Promise<Tenant> {
    assertSlug(input.slug);
    const kind = input.kind ?? this.config.tenants.defaultKind;
    // Names are checked before anything runs: too long a name is refused here.
    placeTenant(input.slug, kind, this.config.tenants);
    const set = await this.migrations();
    return this.operations.run({ command: 'tenant create', tenant: input.slug, arguments: { ...input, kind } }, async (op) => {
      const server = await this.registry.getServer(input.server ?? MAIN_SERVER);
      const created = await provisionTenant({ ...input, kind, server }, set, op, {
        registry: this.registry,
        storage: this.storage,
        tenantsConfig: this.config.tenants,
        engine: { ...this.engineOptions(), runId: op.id },
      });
      return {
        result: created.tenant,
        record: { versionAfter: created.result?.toVersion ?? null, ...(created.cleared ? { arguments: { ...input, kind, clearedInterruptedCreate: true } } : {}) },
      };
    });
  }

  /** What the registry records a tenant owns: its databases and schemas. */
  async tenantStorage(slug: string): Promise<{ kind: string; server: string; database: string; name: string }[]> {
    const tenant = await this.registry.getTenant(slug);
    return (await this.registry.storage.ofTenant(tenant.id)).map((c) => ({ kind: c.kind, server: c.server, database: c.database, name: c.name }));
  }

  /**
   * Runs `fn` on a session in the tenant's database with `search_path` set to
   * the tenant's schema, so unqualified names reach the tenant's own tables.
   */
  async withTenantClient<T>(slug: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const tenant = await this.registry.getTenant(slug);
    const server = await this.registry.getServer(tenant.server);
    return withClient(server.url, tenant.database, async (client) => {
      await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(tenant.schema)]);
      return fn(client);
    });
  }

  /** Migrates the selected tenants one after another; a result per tenant, never a throw for one tenant's failure. */
  async migrate(options: MigrateOptions): Promise<MigrateReport> {
    const args = { tenants: options.tenants, all: options.all, dryRun: options.dryRun, target: options.target, allowOutOfOrder: options.allowOutOfOrder };
    return this.operations.run({ command: 'migrate', arguments: args }, async (op) => {
      const set = await this.migrations();
      assertTarget(set, options.target);
      const selected = options.all ? await this.registry.listTenants() : await Promise.all((options.tenants ?? []).map((slug) => this.registry.getTenant(slug)));
      const context = await this.upgradeContext(set, selected);
      const runId = op.id;
      const outcomes: TenantOutcome[] = [];
      for (const tenant of selected) {
        const outcome = await this.upgradeTenant(tenant, context, {
          runId,
          operationId: op.id,
          dryRun: options.dryRun === true,
          allowOutOfOrder: options.allowOutOfOrder,
          target: options.target,
        });
        outcomes.push(outcome);
        options.onTenant?.(outcome);
      }
      const report = {
        runId,
        outcomes,
        succeeded: outcomes.filter((o) => o.status === 'succeeded' || o.status === 'planned').length,
        failed: outcomes.filter((o) => o.status === 'failed').length,
        skipped: outcomes.filter((o) => o.status === 'skipped').length,
      };
      return { result: report, record: { runId, ...endOfRun(report.failed, outcomes.length) } };
    });
  }

  /** The tenants a selection names (active ones unless statuses say otherwise), sorted. */
  async selectTenants(selection: RolloutSelection, order: 'slug' | 'plan' | 'created' = 'slug'): Promise<Tenant[]> {
    // A tenant another rollout is upgrading is still an active tenant; the engine's lock serializes the two.
    const statuses = selection.statuses ?? ['active', 'upgrading'];
    const all = await this.registry.listTenants();
    if (!selection.all && !selection.tenants?.length && !selection.tags?.length && !selection.servers?.length) {
      throw new FlotillaError('FLO_USAGE', 'Say which tenants to migrate.', { hint: 'Use --all, --tenant <slug> (repeatable), --tag <tag> or --server <name>.' });
    }
    for (const slug of selection.tenants ?? []) if (!all.some((t) => t.slug === slug)) await this.registry.getTenant(slug);
    return orderTenants(
      all
        .filter((t) => statuses.includes(t.status))
        .filter((t) => !selection.tenants?.length || selection.tenants.includes(t.slug))
        .filter((t) => !selection.tags?.length || selection.tags.some((tag) => t.tags.includes(tag)))
        .filter((t) => !selection.servers?.length || selection.servers.includes(t.server)),
      order,
    );
  }

  /**
   * Creates a rollout: the selected tenants, each marked `skipped` when already
   * at the target (read in bulk) or `pending`, placed in a canary wave and waves.
   */
  async startRollout(selection: RolloutSelection, options: RolloutStartOptions = {}): Promise<Rollout> {
    return this.operations.run({ command: 'rollout start', arguments: { ...selection, ...options } }, async () => {
      const rollout = await this.createRollout(selection, options);
      return { result: rollout, record: { runId: rollout.id } };
    });
  }

  /**
   * `flotilla migrate`: a new rollout, worked on by this process to its end, as
   * one operation (killed anywhere in it, it shows as one interrupted migrate).
   */
  async rollout(selection: RolloutSelection, options: RolloutStartOptions & { emit?: EventSink; started?: (rollout: Rollout) => void } = {}): Promise<Rollout> {
    const { emit, started, ...startOptions } = options;
    return this.operations.run({ command: 'migrate', arguments: { ...selection, ...startOptions } }, async (op) => {
      const created = await this.createRollout(selection, startOptions);
      started?.(created);
      const final = await this.workOnRollout(created, op, { emit });
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  private async createRollout(selection: RolloutSelection, options: RolloutStartOptions): Promise<Rollout> {
    const set = await this.migrations();
    assertTarget(set, options.target);
    const servers = new Map((await this.registry.listServers()).map((s) => [s.name, s]));
    const selected = await this.selectTenants(selection, options.order === 'size' ? 'slug' : (options.order ?? 'slug'));
    let ordered = selected;
    if (options.order === 'size') {
      // Smallest first: the first waves finish (and fail, if they must) quickest.
      const sizes = await tenantSizes(selected, servers);
      ordered = [...selected].sort((a, b) => (sizes.get(a.slug) ?? 0) - (sizes.get(b.slug) ?? 0) || (a.slug < b.slug ? -1 : 1));
    }
    // Schema tenants are read in bulk (one query per shared database). A database tenant would need a
    // connection of its own just to be skipped; the runner connects anyway and its plan skips it then.
    const versions = await tenantVersions(
      ordered.filter((t) => t.kind === 'schema'),
      servers,
      set,
      options.target ?? null,
    );
    const pending = ordered.filter((t) => !versions.get(t.slug)?.atTarget);
    const placements = new Map(
      assignWaves(
        pending.map((t) => t.slug),
        { canary: options.canary, waveSize: options.waveSize },
      ).map((p) => [p.tenant, p]),
    );
    const concurrency = options.concurrency ?? 4;
    const id = await this.registry.rollouts.create({
      runner: await this.runner(),
      target: options.target ?? null,
      options: {
        canary: options.canary,
        canaryCheck: options.canaryCheck,
        waveSize: options.waveSize,
        concurrency,
        maxFailures: options.maxFailures,
        order: options.order,
        budget: failureBudget(options.maxFailures, pending.length),
      },
      selection: { ...selection },
      startedBy: currentActor(),
      tenants: ordered.map((t, i) => {
        const placed = placements.get(t.slug);
        return {
          tenant: t.slug,
          server: t.server,
          wave: placed?.wave ?? 1,
          position: placed?.position ?? pending.length + i,
          state: placed ? 'pending' : 'skipped',
          versionBefore: versions.get(t.slug)?.version ?? null,
        };
      }),
    });
    return (await this.registry.rollouts.get(id))!;
  }

  /** Works on a rollout until nothing is left for this process; several processes may run the same rollout. */
  async runRollout(id: string, options: { emit?: EventSink; concurrency?: number } = {}): Promise<Rollout> {
    const rollout = await this.getRollout(id);
    return this.operations.run({ command: 'rollout run', arguments: { rollout: rollout.id } }, async (op) => {
      const final = await this.workOnRollout(rollout, op, options);
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  private async workOnRollout(rollout: Rollout, op: OperationContext, options: { emit?: EventSink; concurrency?: number }): Promise<Rollout> {
    const started = performance.now();
    const emit = options.emit ?? (() => undefined);
    const set = await this.migrations();
    const servers = await this.registry.listServers();
    const rows = await this.registry.rollouts.tenants(rollout.id);
    const inRollout = new Set(rows.map((r) => r.tenant));
    const context = await this.upgradeContext(
      set,
      (await this.registry.listTenants()).filter((t) => inRollout.has(t.slug)),
    );
    await runRollout(
      {
        store: this.registry.rollouts,
        runner: await this.runner(),
        serverLimits: await this.registry.serverLimits(servers.filter((s) => rows.some((r) => r.server === s.name))),
        upgrade: async (slug) =>
          this.upgradeTenant(await this.registry.getTenant(slug), context, { runId: rollout.id, operationId: op.id, dryRun: false, target: rollout.target ?? undefined }),
      },
      rollout.id,
      { concurrency: options.concurrency ?? rollout.options.concurrency, emit, budget: rollout.options.budget },
    );
    const final = await this.getRollout(rollout.id);
    emit({
      event: 'rollout.finished',
      rollout: final.id,
      status: final.status,
      succeeded: final.counts.succeeded,
      failed: final.counts.failed,
      skipped: final.counts.skipped,
      pending: final.counts.pending,
      durationMs: Math.round(performance.now() - started),
    });
    return final;
  }

  /**
   * Continues an unfinished rollout after a crash or a halt: tenants a dead
   * runner left `running` are rechecked against their own history; failed
   * tenants are retried when their error was transient (or all, with `retry: 'all'`).
   */
  async resumeRollout(id: string, options: { emit?: EventSink; retry?: 'transient' | 'all' | 'none'; concurrency?: number } = {}): Promise<Rollout> {
    const rollout = await this.getRollout(id);
    return this.operations.run({ command: 'rollout resume', arguments: { rollout: rollout.id, retry: options.retry ?? 'transient' } }, async (op) => {
      // Nothing left to do (resumed again after it finished): said as it is, with nothing run.
      const now = await this.getRollout(rollout.id);
      if ((now.status === 'finished' || now.status === 'cancelled') && (now.counts.failed === 0 || options.retry === 'none')) return { result: now, record: { runId: now.id } };
      const recovered = await this.registry.rollouts.recover(rollout.id, options.retry ?? 'transient');
      await this.registry.rollouts.setStatus(rollout.id, 'running', null, ['running', 'halted', 'finished']);
      options.emit?.({ event: 'rollout.resumed', rollout: rollout.id, runner: await this.runnerName(), rechecked: recovered.reset, retried: recovered.retried });
      const final = await this.workOnRollout(await this.getRollout(rollout.id), op, options);
      return { result: final, record: { runId: final.id, ...endOfRollout(final) } };
    });
  }

  async getRollout(id: string): Promise<Rollout> {
    const rollout = await this.registry.rollouts.get(id);
    if (!rollout) {
      throw new FlotillaError('FLO_ROLLOUT_NOT_FOUND', `No rollout with id ${id}.`, { hint: 'See the rollouts with `flotilla rollout list`.', meta: { rollout: id } });
    }
    return rollout;
  }

  listRollouts(limit?: number): Promise<Rollout[]> {
    return this.registry.rollouts.list(limit);
  }

  rolloutTenants(id: string): Promise<RolloutTenant[]> {
    return this.registry.rollouts.tenants(id);
  }

  /** Stops a rollout: no new tenant starts; tenants running now finish. */
  async cancelRollout(id: string): Promise<Rollout> {
    const rollout = await this.getRollout(id);
    // Starting an operation first puts back the tenants of runners that died, so none stays `upgrading`.
    return this.operations.run({ command: 'rollout cancel', arguments: { rollout: rollout.id } }, async () => {
      await this.registry.rollouts.setStatus(rollout.id, 'cancelled', 'cancelled by an operator', ['running', 'halted']);
      return { result: await this.getRollout(rollout.id), record: { runId: rollout.id } };
    });
  }

  /** Rollouts left running by a runner that died, or halted: the next command offers to resume them. */
  async unfinishedRollouts(): Promise<Rollout[]> {
    const candidates = await this.registry.rollouts.unfinished();
    const result: Rollout[] = [];
    for (const rollout of candidates) if (rollout.status === 'halted' || (await this.registry.rollouts.liveRunners(rollout.id)) === 0) result.push(rollout);
    return result;
  }

  /** What every tenant upgrade of one command shares: the migrations, their lint, the servers. */
  private async upgradeContext(set: MigrationSet, tenants: readonly Tenant[]): Promise<UpgradeContext> {
    const servers = new Map((await this.registry.listServers()).map((s) => [s.name, s]));
    const schemaTenants = this.config.lint.schemaTenants ?? tenants.some((t) => t.kind === 'schema');
    const lint = this.lintOf(set, lintOptions(this.config, schemaTenants));
    // One query for every schema tenant: an upgrade claims the schemas its migrations create only when some are new.
    const schemaTenantIds = tenants.filter((t) => t.kind === 'schema').map((t) => t.id);
    const ownedSchemas = schemaTenantIds.length > 0 ? await this.registry.storage.schemasOfTenants(schemaTenantIds) : new Map<string, string[]>();
    const ownedRoles = schemaTenantIds.length > 0 ? await this.registry.storage.schemasOfTenants(schemaTenantIds, 'role') : new Map<string, string[]>();
    return { set, servers, lint, lintErrors: blockingFindings(lint), ownedSchemas, ownedRoles };
  }

  /**
   * One tenant's upgrade: the lint gate, a backup when the policy asks for one,
   * the engine (all-or-nothing, verified), and its audit event. Never throws for
   * the tenant's own failure.
   */
  private async upgradeTenant(
    tenant: Tenant,
    context: UpgradeContext,
    options: { runId: string; operationId: string; dryRun: boolean; allowOutOfOrder?: boolean; target?: string },
  ): Promise<TenantOutcome> {
    const started = performance.now();
    let outcome: TenantOutcome;
    // A rollout marks the tenant `upgrading` when it claims it.
    if (tenant.status !== 'active' && tenant.status !== 'upgrading') {
      outcome = { tenant: tenant.slug, status: 'skipped', reason: `tenant is ${tenant.status}`, durationMs: 0 };
    } else {
      try {
        const server = context.servers.get(tenant.server)!;
        // Schema tenants share their database's pooled sessions; a database tenant needs a connection of its own.
        const session = tenant.kind === 'schema' ? this.sessions.source(server.url, tenant.database, 16) : undefined;
        const allowOutOfOrder = options.allowOutOfOrder ?? this.config.engine.allowOutOfOrder;
        const engine = { ...this.engineOptions(), lintErrors: context.lintErrors, runId: options.runId, target: options.target, allowOutOfOrder, session, dryRun: options.dryRun };
        // A schema tenant made before roles existed gets its own now; its migrations run under it.
        if (!options.dryRun) await ensureTenantRole(tenant, this.storage, { known: context.ownedRoles.get(tenant.id) ?? [] });
        // The schemas this upgrade's migrations create become the tenant's before they exist (a dry run only checks).
        await claimTenantSchemas(tenant, server, context.set, this.storage, { known: context.ownedSchemas.get(tenant.id) ?? [], checkOnly: options.dryRun });
        outcome = await this.migrateWithBackup(tenant, server, migrationTarget(tenant, server, context.set), engine, { ...context, operationId: options.operationId });
      } catch (error) {
        if (!isFlotillaError(error)) throw error;
        outcome = { tenant: tenant.slug, status: 'failed', error, durationMs: performance.now() - started };
      }
    }
    await this.registry.audit.record({
      ...auditOfOutcome(outcome, { runId: options.runId, dryRun: options.dryRun, allowOutOfOrder: options.allowOutOfOrder === true }),
      operationId: options.operationId,
    });
    return outcome;
  }

  /**
   * The engine's run with the backup policy applied to its plan, under the
   * tenant's lock, just before anything runs. A dump is taken there; a snapshot
   * needs the database free of sessions, so the engine stops, the snapshot is
   * taken, and the engine plans again.
   */
  private async migrateWithBackup(
    tenant: Tenant,
    server: Server,
    target: MigrationTarget,
    engine: EngineOptions,
    context: UpgradeContext & { operationId: string },
  ): Promise<TargetResult & { backup: BackupDecision | null }> {
    const backup = { reasons: null as readonly string[] | null, id: null as string | null, snapshotFirst: false };
    const take = async () => {
      const reason = `before migrate: ${backup.reasons!.join('; ')}`;
      backup.id = (await this.backups.backup(tenant, server, context.set, { id: context.operationId }, { reason, runId: engine.runId })).id;
    };
    const beforeApply = async (pending: readonly PendingPart[], catalogRisks: readonly string[]): Promise<'apply' | 'stop'> => {
      backup.reasons = this.backupReasons(pending, context.lint, catalogRisks);
      if (!backup.reasons || engine.dryRun) return 'apply';
      // A snapshot copies the database only while nobody, this session included, is connected.
      backup.snapshotFirst = tenant.kind === 'database' && this.config.backup.strategy === 'snapshot';
      if (backup.snapshotFirst) return 'stop';
      await take();
      return 'apply';
    };
    let result = await migrateTarget(target, context.set, { ...engine, beforeApply: this.config.backup.policy === 'never' ? undefined : beforeApply });
    if (backup.snapshotFirst) {
      await take();
      result = await migrateTarget(target, context.set, { ...engine, beforeApply: undefined });
    }
    return { ...result, backup: backup.reasons ? { reasons: backup.reasons, id: backup.id } : null };
  }

  /** Every tenant with its version, pending count and problems; one connection per tenant database. */
  async status(): Promise<TenantState[]> {
    const set = await this.migrations();
    const tenants = await this.registry.listTenants();
    const servers = new Map((await this.registry.listServers()).map((s) => [s.name, s]));
    const states = new Map<string, TenantState>();
    for (const group of byDatabase(tenants)) {
      const first = group[0]!;
      const server = servers.get(first.server)!;
      let client: pg.Client;
      try {
        client = await connect(server.url, first.database, 'flotilla status');
      } catch (error) {
        const problem = { code: 'FLO_CONNECTION_FAILED' as const, message: (error as Error).message };
        for (const tenant of group) states.set(tenant.slug, baseState(tenant, { problems: [problem] }));
        continue;
      }
      try {
        // Bulk: every schema's history and every lock holder of this database in a few queries.
        const schemas = group.map((t) => t.schema);
        const histories = await readHistories(client, schemas);
        const holders = await lockHolders(client, schemas);
        for (const tenant of group) {
          const applied = histories.get(tenant.schema) ?? [];
          const result = plan(set.migrations, applied, { allowOutOfOrder: this.config.engine.allowOutOfOrder });
          const problems: StatusProblem[] = result.ok ? [] : result.problems.map((p) => ({ code: p.code, message: p.message }));
          const holder = holders.get(tenant.schema);
          if (holder) problems.push({ code: 'FLO_TENANT_LOCKED', message: `locked by session ${holder.pid} (${holder.application})` });
          let pending = result.ok ? result.plan.steps.length : 0;
          if (!result.ok) {
            // The plan is refused, but the count still says what is not applied (or only partly).
            const complete = new Set(applied.filter((a) => a.remaining.length === 0).map((a) => `${a.version}_${a.name}`));
            pending = set.migrations.filter((m) => !complete.has(m.id)).length;
          }
          states.set(tenant.slug, baseState(tenant, { version: newestVersion(applied), applied: applied.length, pending, problems }));
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    return tenants.map((t) => states.get(t.slug)!);
  }

  /** Backs a tenant up now (`flotilla backup <slug>`), recorded in the catalog and the audit trail. */
  async backup(slug: string, options: { strategy?: BackupStrategy; keep?: number } = {}): Promise<Backup> {
    assertSlugReference(slug);
    return this.operations.run({ command: 'backup', arguments: { slug, ...options }, tenant: slug }, async (op) => {
      const tenant = await this.registry.getTenant(slug);
      const server = await this.registry.getServer(tenant.server);
      // A backup must work even while the migrations directory is broken: then it takes what the registry records.
      const backup = await this.backups.backup(tenant, server, await this.migrations().catch(() => undefined), op, { ...options, reason: 'manual' });
      return { result: backup, record: { versionBefore: backup.schemaVersion, versionAfter: backup.schemaVersion, backupId: backup.id } };
    });
  }

  listBackups(slug?: string): Promise<Backup[]> {
    if (slug !== undefined) assertSlugReference(slug);
    return this.registry.backups.list(slug);
  }

  /** Removes a tenant's backups beyond the newest `keep`: their files and snapshot databases, and their catalog rows. */
  async pruneBackups(slug: string, keep: number): Promise<Backup[]> {
    assertSlugReference(slug);
    return this.operations.run({ command: 'backup prune', arguments: { slug, keep }, tenant: slug }, async (op) => {
      await this.registry.getTenant(slug);
      const removed = await this.backups.prune(slug, keep, op);
      return { result: removed };
    });
  }

  /** Restores a backup into its tenant (offline meanwhile), or into a new tenant with `as`. */
  async restore(slug: string, backupId: string, options: { as?: string } = {}): Promise<{ backup: Backup; tenant: Tenant }> {
    assertSlugReference(slug);
    if (options.as !== undefined) assertSlug(options.as);
    // Only a schema tenant restored under another slug needs the migrations (the schemas they create).
    const set = await this.migrations().catch(() => undefined);
    return this.operations.run({ command: 'restore', arguments: { slug, backup: backupId, as: options.as }, tenant: options.as ?? slug }, async (op) => {
      const result = await restoreBackup({ registry: this.registry, storage: this.storage, config: this.config }, op, set, { backupId, slug, as: options.as });
      return { result, record: { versionAfter: result.backup.schemaVersion, backupId: result.backup.id } };
    });
  }

  /** The audit trail, oldest first. */
  audit(filter: { tenant?: string; since?: Date; limit?: number } = {}): Promise<AuditEvent[]> {
    return this.registry.audit.list(filter);
  }

  /** Lints the migrations directory; tenancy rules apply when schema tenants exist (or the config says so). */
  async lint(): Promise<LintReport> {
    const set = await this.migrations();
    const tenants = await this.registry.listTenants();
    const schemaTenants = this.config.lint.schemaTenants ?? (tenants.some((t) => t.kind === 'schema') || this.config.tenants.defaultKind === 'schema');
    return this.lintOf(set, lintOptions(this.config, schemaTenants));
  }

  /**
   * Whether the backup policy asks for a backup before running `pending`, and
   * why: `always`; or `risky` when it could remove or rewrite existing data
   * beyond what the transaction and verification protect (see backupRisks).
   * Null: no backup.
   */
  private backupReasons(pending: readonly PendingPart[], lint: LintReport, catalogRisks: readonly string[]): readonly string[] | null {
    const policy = this.config.backup.policy;
    if (policy === 'never') return null;
    if (policy === 'always') return ['policy: always'];
    const risks = [...backupRisks(pending, lint), ...catalogRisks];
    return risks.length > 0 ? risks : null;
  }

  private engineOptions() {
    const { lockWaitMs, lockTimeout, statementTimeout } = this.config.engine;
    return { lockWaitMs, lockTimeout, statementTimeout, verify: this.config.verify };
  }
}

/** Refuses a target version that no migration has: `--to 9999` must not mean "everything". */
function assertTarget(set: MigrationSet, target: string | undefined): void {
  if (target === undefined) return;
  if (!/^\d{1,40}$/.test(target)) {
    throw new FlotillaError('FLO_USAGE', `Target version ${JSON.stringify(target.slice(0, 60))} is not a version: versions are digits, as in the migration file names.`, {
      hint: 'Give the version of an existing migration, for example 0003 for 0003_add_loans.sql.',
      meta: { target: target.slice(0, 60) },
    });
  }
  if (!set.migrations.some((m) => compareVersions(m.version, target) === 0)) {
    const newest = set.migrations.at(-1)?.version ?? null;
    throw new FlotillaError('FLO_VERSION_NOT_FOUND', `No migration has version ${target}${newest ? ` (the newest is ${newest})` : ' (there are no migrations)'}.`, {
      hint: 'Give the version of an existing migration, or leave the target out to upgrade to the newest.',
      meta: { target, newest },
    });
  }
}

/** The end of a command that upgraded tenants: failed when any tenant failed. */
function endOfRun(failed: number, total: number): Partial<AuditEventInput> {
  return failed > 0 ? { outcome: 'failed', errorMessage: `${failed} of ${total} tenant${total > 1 ? 's' : ''} failed` } : {};
}

function endOfRollout(rollout: Rollout): Partial<AuditEventInput> {
  if (rollout.status === 'halted') return { outcome: 'failed', errorCode: 'FLO_ROLLOUT_UNFINISHED', errorMessage: `halted: ${rollout.haltReason ?? ''}` };
  return endOfRun(rollout.counts.failed, rollout.counts.total);
}

function auditOfOutcome(outcome: TenantOutcome, context: { runId: string; dryRun: boolean; allowOutOfOrder: boolean }): AuditEventInput {
  const base = {
    command: 'migrate',
    arguments: { dryRun: context.dryRun, allowOutOfOrder: context.allowOutOfOrder },
    tenant: outcome.tenant,
    durationMs: outcome.durationMs,
    runId: context.runId,
  };
  if (outcome.status === 'failed') return { ...base, outcome: 'failed', errorCode: outcome.error.code, errorMessage: outcome.error.message };
  if ('reason' in outcome) return { ...base, outcome: 'skipped', errorMessage: outcome.reason };
  const verification = outcome.verification;
  const details = verification
    ? {
        tablesVerified: verification.tables,
        allowedLosses: verification.allowedLosses.map((l) => `${describeLoss(l)} — ${l.allowedBecause}`),
        overwrites: verification.overwrites.map(describeOverwrite),
      }
    : null;
  return {
    ...base,
    outcome: outcome.status,
    versionBefore: outcome.fromVersion,
    versionAfter: outcome.status === 'planned' ? outcome.fromVersion : outcome.toVersion,
    backupId: outcome.backup?.id ?? null,
    details,
  };
}

/** A server as the API shows it: its URL without a password. */
function publicServer(server: Server): Server {
  // Any other secret parameter (sslpassword) is masked as well.
  return { ...server, url: redactUrl(splitPassword(server.url).url) };
}

function baseState(tenant: Tenant, extra: Partial<TenantState>): TenantState {
  return {
    slug: tenant.slug,
    kind: tenant.kind,
    status: tenant.status,
    server: tenant.server,
    database: tenant.database,
    schema: tenant.schema,
    version: null,
    applied: 0,
    pending: 0,
    problems: [],
    ...extra,
  };
}

/** Creates the control database if needed, then migrates its schema with Flotilla's own engine. */
async function bootstrapControlDatabase(serverUrl: string, controlDatabase: string): Promise<void> {
  const exists = await withClient(serverUrl, controlDatabase, async () => true).catch((error: FlotillaError) => {
    const cause = error.cause as { code?: string } | undefined;
    if (cause?.code === '3D000') return false;
    throw error;
  });
  if (!exists) await withClient(serverUrl, 'postgres', (admin) => ensureDatabase(admin, controlDatabase));
  const set = await loadMigrationSet(CONTROL_MIGRATIONS);
  await migrateTarget({ tenant: 'control plane', serverUrl, database: controlDatabase, schema: CONTROL_SCHEMA, createSchema: true }, set);
}
