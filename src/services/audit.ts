import type { AuditEvent } from '../control/audit-log.js';
import type { ServiceContext } from './context.js';

/** The append-only audit trail: every mutating call's start and end, and each tenant's upgrade. */
export class AuditService {
  constructor(private readonly ctx: ServiceContext) {}

  /** The events, oldest first. */
  list(filter: { tenant?: string; since?: Date; limit?: number } = {}): Promise<AuditEvent[]> {
    return this.ctx.registry.audit.list(filter);
  }
}
