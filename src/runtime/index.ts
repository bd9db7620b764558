/**
 * flotilla/runtime: what an app imports to serve every tenant from one
 * codebase. Its dependency closure is `pg` and Node's own modules: nothing of
 * Flotilla's engine, lint, backups, CLI or embedded server.
 */
export type { ErrorAnswer } from './answer.js';
export { answerFor } from './answer.js';
export type { MaintenanceOptions } from './admission.js';
export type { BudgetOptions, BudgetStats } from './budget-options.js';
export type { TenantContext, TenantSource } from './context.js';
export { currentTenant, findTenant } from './context.js';
export type { RequestInfo, ResolutionOptions, ResolverName } from './resolution.js';
export type { Admitted, RuntimeOptions, RuntimeStats, TenantPool } from './runtime.js';
export { createRuntime, TenantRuntime } from './runtime.js';
export { nodeRequestInfo } from './node-request.js';
export type { DirectoryOptions, DirectoryStats } from './tenant-directory.js';
export type { Queryable, TenantClient } from './tenant-db.js';
export { TenantDb } from './tenant-db.js';
export type { AnyFlotillaError, ErrorCode, ErrorFamily } from '../core/errors.js';
export { FlotillaError, isFlotillaError } from '../core/errors.js';
