import type { TenantStatus } from './tenant.js';

/** What a running command may do with its own record. */
export interface OperationContext {
  readonly id: string;
  /** Records how far it got (where that decides how it is finished or undone). */
  setPhase(phase: string): Promise<void>;
  /** Sets the tenant's status, recording the one it had; not when it is one of `unlessIn` (then `changed` is false). */
  setTenantStatus(slug: string, status: TenantStatus, unlessIn?: readonly TenantStatus[]): Promise<{ previous: TenantStatus; changed: boolean }>;
  /** Puts the tenant's status back to `previous` if it is still `status` (the operation's use of it ended). */
  restoreTenantStatus(slug: string, status: TenantStatus, previous: TenantStatus): Promise<void>;
  /** Refuses to go on once this process can no longer prove it lives (its liveness session broke). */
  assertAlive(): void;
}
