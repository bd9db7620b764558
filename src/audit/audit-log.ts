import { userInfo } from 'node:os';
import type pg from 'pg';
import { redactUrl } from '../postgres/server-url.js';

export type AuditOutcome = 'succeeded' | 'failed' | 'skipped' | 'planned';

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

const SECRET_KEY = /pass(word)?|secret|token|credential/i;

/** Arguments as recorded: URLs without passwords, secret-looking keys masked. */
export function redactArguments(value: unknown, key = ''): unknown {
  if (SECRET_KEY.test(key)) return '***';
  if (typeof value === 'string') return /^postgres(ql)?:\/\//.test(value) ? redactUrl(value) : value;
  if (Array.isArray(value)) return value.map((item) => redactArguments(item));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, redactArguments(v, k)]));
  return value;
}

/** The append-only audit trail in the control database (UPDATE and DELETE are refused by a trigger). */
export class AuditLog {
  constructor(
    private readonly pool: pg.Pool,
    private readonly actor: string = currentActor(),
  ) {}

  async record(event: AuditEventInput): Promise<void> {
    await this.pool.query(
      `INSERT INTO flotilla.audit_events (actor, command, arguments, tenant, version_before, version_after, outcome, error_code, error_message, duration_ms, backup_id, run_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [
        this.actor,
        event.command,
        JSON.stringify(redactArguments(event.arguments)),
        event.tenant ?? null,
        event.versionBefore ?? null,
        event.versionAfter ?? null,
        event.outcome,
        event.errorCode ?? null,
        event.errorMessage ?? null,
        Math.round(event.durationMs),
        event.backupId ?? null,
        event.runId ?? null,
      ],
    );
  }

  async list(filter: { tenant?: string; since?: Date; limit?: number } = {}): Promise<AuditEvent[]> {
    const { rows } = await this.pool.query(
      `SELECT id, at, actor, command, arguments, tenant, version_before, version_after, outcome, error_code, error_message, duration_ms, backup_id, run_id
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
    }));
  }
}

/** `2h`, `3d`, `45min`, or an ISO date → the instant it names. */
export function parseSince(text: string, now = new Date()): Date | undefined {
  const relative = /^(\d+)\s*(min|m|h|d|w)$/.exec(text.trim());
  if (relative) {
    const unit = { min: 60_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[relative[2] as 'min' | 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() - Number(relative[1]) * unit);
  }
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
