import { userInfo } from 'node:os';
import type pg from 'pg';
import { redactSecrets, redactValue } from '../core/redact.js';

/** `started` opens a command; `interrupted` closes one whose process died (appended by the next command). */
export type AuditOutcome = 'succeeded' | 'failed' | 'skipped' | 'planned' | 'started' | 'interrupted';

export interface AuditEventInput {
  readonly command: string;
  readonly arguments: Record<string, unknown>;
  readonly tenant?: string | null;
  readonly versionBefore?: string | null;
  readonly versionAfter?: string | null;
  readonly outcome: AuditOutcome;
  readonly errorCode?: string | null;
  readonly errorMessage?: string | null;
  readonly durationMs: number;
  readonly backupId?: string | null;
  readonly runId?: string | null;
  /** The command (operation) this event belongs to: its start, its tenants' events and its end share it. */
  readonly operationId?: string | null;
  /** What verification saw (tables compared, allowed losses, values overwritten), for a tenant's upgrade. */
  readonly details?: Record<string, unknown> | null;
  /** Who acted; by default the actor of the log (the OS user). */
  readonly actor?: string;
}

export interface AuditEvent extends Required<AuditEventInput> {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
}

/** Who acts: the OS user (the API will pass its token's name). */
export function currentActor(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

export const AUDIT_COLUMNS =
  'actor, command, arguments, tenant, version_before, version_after, outcome, error_code, error_message, duration_ms, backup_id, run_id, operation_id, details';

export const AUDIT_INSERT = `INSERT INTO flotilla.audit_events (${AUDIT_COLUMNS}) VALUES (${AUDIT_COLUMNS.split(',')
  .map((_, i) => `$${i + 1}`)
  .join(', ')})`;

/** One event's values in AUDIT_COLUMNS order, its arguments and message redacted. */
export function auditRow(actor: string, event: AuditEventInput): unknown[] {
  return [
    actor,
    event.command,
    JSON.stringify(redactValue(event.arguments)),
    event.tenant ?? null,
    event.versionBefore ?? null,
    event.versionAfter ?? null,
    event.outcome,
    event.errorCode ?? null,
    event.errorMessage === undefined || event.errorMessage === null ? null : redactSecrets(event.errorMessage),
    Math.round(event.durationMs),
    event.backupId ?? null,
    event.runId ?? null,
    event.operationId ?? null,
    event.details ? JSON.stringify(redactValue(event.details)) : null,
  ];
}

/** The append-only audit trail in the control database (UPDATE and DELETE are refused by a trigger). */
export class AuditLog {
  constructor(
    private readonly pool: pg.Pool,
    private readonly actor: string = currentActor(),
  ) {}

  async record(event: AuditEventInput): Promise<void> {
    await this.pool.query(AUDIT_INSERT, auditRow(event.actor ?? this.actor, event));
  }

  async list(filter: { tenant?: string; since?: Date; limit?: number } = {}): Promise<AuditEvent[]> {
    const { rows } = await this.pool.query(
      `SELECT id, at, actor, command, arguments, tenant, version_before, version_after, outcome, error_code, error_message, duration_ms, backup_id, run_id, operation_id, details
         FROM flotilla.audit_events
        WHERE ($1::text IS NULL OR tenant = $1) AND ($2::timestamptz IS NULL OR at >= $2)
        ORDER BY id DESC LIMIT $3`,
      [filter.tenant ?? null, filter.since ?? null, filter.limit ?? 1000],
    );
    return rows.reverse().map((r) => ({
      id: Number(r.id),
      at: (r.at as Date).toISOString(),
      actor: r.actor,
      command: r.command,
      arguments: r.arguments,
      tenant: r.tenant,
      versionBefore: r.version_before,
      versionAfter: r.version_after,
      outcome: r.outcome,
      errorCode: r.error_code,
      errorMessage: r.error_message,
      durationMs: r.duration_ms,
      backupId: r.backup_id,
      runId: r.run_id,
      operationId: r.operation_id,
      details: r.details,
    }));
  }
}
