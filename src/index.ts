/**
 * Flotilla's library API: the facade, the types in its signatures, errors and
 * configuration. The CLI, and later the HTTP API and dashboard, are thin layers
 * over it; engine internals are not part of it.
 */
export { Flotilla, MAIN_SERVER } from './flotilla.js';
export type { OpenOptions } from './flotilla.js';

export type { TenantService, OwnedObject } from './services/tenants.js';
export type { UpgradeService } from './services/upgrade.js';
export type { RolloutService } from './services/rollouts.js';
export type { StatusService } from './services/status.js';
export type { BackupsService } from './services/backups.js';
export type { AuditService } from './services/audit.js';
export type { ServerService } from './services/servers.js';
export type { LintService } from './services/lint.js';
export type { BundleService, ApplyResult } from './services/bundles.js';
export type { ApplyReport, TenantApplyReport, WrittenReport } from './services/bundle-report.js';
export type { BundleInstall } from './control/bundle-installs.js';
export type { BundleManifest } from './core/bundle/manifest.js';
export type { VerifiedBundle } from './core/bundle/verify.js';
export { buildBundle } from './services/bundle-build.js';
export type { BuildOptions, BuiltBundle } from './services/bundle-build.js';
export { generateKeyFiles, verifyBundleFile } from './services/bundle-files.js';

export type {
  BackupDecision,
  CreateTenantInput,
  MigrateOptions,
  MigrateReport,
  RolloutSelection,
  RolloutStartOptions,
  StatusProblem,
  TenantOutcome,
  TenantState,
} from './core/outcomes.js';
export type { TargetResult } from './core/target.js';
export type { Split } from './core/schedule.js';
export type { Loss, Overwrite } from './core/verification.js';
export type { Server, Tenant, TenantKind, TenantStatus } from './core/tenant.js';
export type { Rollout, RolloutCounts, RolloutOptions, RolloutStatus, RolloutTenant, TenantState as RolloutTenantState } from './control/rollout-store.js';
export type { Backup, BackupStrategy } from './control/backup-catalog.js';
export type { AuditEvent, AuditOutcome } from './control/audit-log.js';
export type { EventSink, RolloutEvent } from './core/events.js';
export type { Finding, LintReport } from './core/lint/lint.js';
export type { MigrationSet } from './core/migration-set.js';
export type { ParsedMigration } from './core/migration.js';

export { FlotillaError, isFlotillaError } from './core/errors.js';
export type { ErrorCode, ErrorMeta } from './core/errors.js';

export { loadConfig } from './config/config.js';
export type { FlotillaConfig, FlotillaConfigInput, ResolvedConfig } from './config/config.js';
