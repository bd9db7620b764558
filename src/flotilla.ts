import type { ResolvedConfig } from './config/config.js';
import { loadConfig } from './config/config.js';
import { currentActor } from './control/audit-log.js';
import { MAIN_SERVER } from './core/tenant.js';
import type { EmbeddedServer } from './postgres/embedded.js';
import { startEmbedded } from './postgres/embedded.js';
import { databaseOf, redactUrl, withDatabase } from './postgres/server-url.js';
import { SessionPools } from './postgres/session-pools.js';
import { AuditService } from './services/audit.js';
import { BackupService } from './services/backup-service.js';
import { BackupsService } from './services/backups.js';
import { BundleService } from './services/bundles.js';
import type { ServiceContext } from './services/context.js';
import { openControlPlane } from './services/control-plane.js';
import { DomainService } from './services/domains.js';
import { LintService } from './services/lint.js';
import { MaintenanceService } from './services/maintenance.js';
import { DirectorySource } from './services/migration-source.js';
import { Operations } from './services/operations.js';
import { RolloutService } from './services/rollouts.js';
import { RunnerSession } from './services/runner-session.js';
import { ServerService } from './services/servers.js';
import { StatusService } from './services/status.js';
import { TenantService } from './services/tenants.js';
import { UpgradeService } from './services/upgrade.js';
import { OwnedStorage } from './tenancy/owned-storage.js';

export { MAIN_SERVER };

export interface OpenOptions {
  /** A configuration already loaded; otherwise it is read from `cwd` (or `configFile`) and the environment. */
  readonly config?: ResolvedConfig;
  readonly cwd?: string;
  readonly configFile?: string;
  /** Who acts, as the audit trail and tenants' histories record it (default: the OS user). */
  readonly actor?: string;
}

/**
 * The library: a control plane, its servers and tenants, and the engine that
 * migrates them, as one service per concept over one context. The CLI (and
 * the HTTP API) are thin layers over these services.
 */
export class Flotilla {
  readonly tenants: TenantService;
  /** Upgrades of chosen tenants, one after another, by this process (`migrate()`). */
  readonly upgrade: UpgradeService;
  /** Fleet rollouts: canary first, in waves, by any number of runner processes. */
  readonly rollouts: RolloutService;
  readonly status: StatusService;
  readonly backups: BackupsService;
  readonly audit: AuditService;
  readonly servers: ServerService;
  readonly lint: LintService;
  /** Maintenance for one tenant or the fleet: running apps answer 503 for it. */
  readonly maintenance: MaintenanceService;
  /** Custom domains that name tenants to running apps. */
  readonly domains: DomainService;
  /** Signed bundles applied at this site, and the record of what was installed. */
  readonly bundles: BundleService;

  /** The configuration in use, its database URL without a password. */
  readonly config: ResolvedConfig;

  private constructor(
    config: ResolvedConfig,
    private readonly context: ServiceContext,
    private readonly serverUrl: string,
    /** Undefined for a view made by as(): it shares its opener's sessions and leaves closing them to it. */
    private readonly embedded: EmbeddedServer | undefined | 'view',
  ) {
    this.config = Object.isFrozen(config) ? config : Object.freeze({ ...config, databaseUrl: config.databaseUrl === undefined ? undefined : redactUrl(config.databaseUrl) });
    this.tenants = new TenantService(context);
    this.upgrade = new UpgradeService(context);
    this.rollouts = new RolloutService(context, this.upgrade);
    this.status = new StatusService(context);
    this.backups = new BackupsService(context);
    this.audit = new AuditService(context);
    this.servers = new ServerService(context);
    this.lint = new LintService(context);
    this.maintenance = new MaintenanceService(context);
    this.domains = new DomainService(context);
    this.bundles = new BundleService(context);
  }

  /** Opens the control plane (creating and migrating it on first use), on the configured server or the embedded one. */
  static async open(options: OpenOptions = {}): Promise<Flotilla> {
    const config = options.config ?? (await loadConfig({ cwd: options.cwd, file: options.configFile }));
    const embedded = config.databaseUrl ? undefined : await startEmbedded(config.embedded.dataDir);
    try {
      const given = config.databaseUrl ?? embedded!.url;
      const controlDatabase = (config.databaseUrl ? databaseOf(given) : undefined) ?? 'flotilla';
      const serverUrl = withDatabase(given, controlDatabase);
      const registry = await openControlPlane(serverUrl, controlDatabase);
      const actor = options.actor ?? currentActor();
      const storage = new OwnedStorage(registry.storage, (name) => registry.serverUrl(name));
      const runner = new RunnerSession(serverUrl, controlDatabase);
      const operations = new Operations({ registry, storage, actor, liveness: () => runner.liveness() });
      const context: ServiceContext = {
        config,
        registry,
        storage,
        sessions: new SessionPools(),
        operations,
        actor,
        migrations: new DirectorySource(config.migrationsDir),
        runner,
        backups: new BackupService(registry, storage, config.backup),
      };
      return new Flotilla(config, context, serverUrl, embedded);
    } catch (error) {
      await embedded?.release();
      throw error;
    }
  }

  /**
   * The same Flotilla acting for someone else: every call through it is
   * recorded under `actor` (an API token's name, say), on the audit trail and in
   * tenants' histories. It shares this one's sessions; closing it does nothing.
   */
  as(actor: string): Flotilla {
    return new Flotilla(this.config, { ...this.context, actor, operations: this.context.operations.as(actor) }, this.serverUrl, 'view');
  }

  /** Ends every session this process holds (its runner's liveness too) and stops the embedded server if it started one. */
  async close(): Promise<void> {
    if (this.embedded === 'view') return;
    await this.context.sessions.close();
    await this.context.runner.close();
    await this.context.registry.close();
    await this.embedded?.release();
  }

  /** The URL of the server holding the control database, without its password. */
  get controlUrl(): string {
    return redactUrl(this.serverUrl);
  }
}
