import type pg from 'pg';
import type { AuditEventInput } from './audit-log.js';
import { AUDIT_COLUMNS, AUDIT_INSERT, auditRow } from './audit-log.js';
import { redactValue } from '../core/redact.js';
import { LOCK_NAMESPACES, processAlive } from '../postgres/lock-namespaces.js';
import { processTag } from '../postgres/process-tag.js';
import { inTransaction } from './transaction.js';

export type OperationOutcome = 'succeeded' | 'failed' | 'interrupted';

/** A mutating command while it runs: what it is, who runs it, and how far it got. */
export interface Operation {
  readonly id: string;
  readonly command: string;
  readonly tenant: string | null;
  readonly arguments: Record<string, unknown>;
  readonly actor: string;
  readonly runnerKey: number;
  readonly previousStatus: string | null;
  /** The tenant whose status it set (and previousStatus was). */
  readonly statusTenant: string | null;
  readonly phase: string | null;
  readonly startedAt: string;
}

const COLUMNS = 'id, command, tenant, arguments, actor, runner_key, previous_status, status_tenant, phase, started_at';

/**
 * The operations table: each mutating command records its start (with an audit
 * event) and its end (with another). One whose process died is found by its
 * liveness lock being gone, and is finished or undone by the next command.
 */
export class OperationStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Records the start of a command, and its audit event, in one transaction. */
  async begin(input: { command: string; tenant: string | null; arguments: Record<string, unknown>; actor: string; runnerKey: number }): Promise<Operation> {
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query(
        `INSERT INTO flotilla.operations (command, tenant, arguments, actor, runner_key, owner) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
        [input.command, input.tenant, JSON.stringify(redactValue(input.arguments)), input.actor, input.runnerKey, processTag()],
      );
      const operation = toOperation(rows[0]);
      await client.query(
        AUDIT_INSERT,
        auditRow(input.actor, { command: input.command, arguments: input.arguments, tenant: input.tenant, outcome: 'started', durationMs: 0, operationId: operation.id }),
      );
      return operation;
    });
  }

  async setPhase(id: string, phase: string): Promise<void> {
    await this.pool.query('UPDATE flotilla.operations SET phase = $2 WHERE id = $1', [id, phase]);
  }

  /** Records the end of a command and its audit event, in one statement (nothing when it already ended). */
  async finish(id: string, outcome: OperationOutcome, actor: string, event: AuditEventInput): Promise<void> {
    const row = auditRow(actor, { ...event, operationId: id });
    const values = row.map((_, i) => `$${i + 3}`).join(', ');
    await this.pool.query(
      `WITH done AS (UPDATE flotilla.operations SET finished_at = clock_timestamp(), outcome = $2 WHERE id = $1 AND finished_at IS NULL RETURNING id)
       INSERT INTO flotilla.audit_events (${AUDIT_COLUMNS}) SELECT ${values} FROM done`,
      [id, outcome, ...row],
    );
  }

  /** The tenant's status goes back to what it was before the operation set it (its run ended). */
  async restoreTenantStatus(id: string, slug: string, status: string, previous: string): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      await client.query('UPDATE flotilla.tenants SET status = $3, updated_at = now() WHERE slug = $1 AND status = $2', [slug, status, previous]);
      await client.query('UPDATE flotilla.operations SET previous_status = NULL, status_tenant = NULL WHERE id = $1', [id]);
    });
  }

  /**
   * Sets a tenant's status for the time of an operation (a restore: `restoring`),
   * recording what it was so that it can be put back if the operation dies.
   */
  async setTenantStatus(id: string, slug: string, status: string, unlessIn: readonly string[] = []): Promise<{ previous: string; changed: boolean }> {
    return inTransaction(this.pool, async (client) => {
      // Read and changed under the row's lock: no other command's status slips in between.
      const { rows } = await client.query<{ status: string }>('SELECT status FROM flotilla.tenants WHERE slug = $1 FOR UPDATE', [slug]);
      const previous = rows[0]!.status;
      if (unlessIn.includes(previous)) return { previous, changed: false };
      await client.query('UPDATE flotilla.operations SET previous_status = $2, status_tenant = $3 WHERE id = $1', [id, previous, slug]);
      await client.query('UPDATE flotilla.tenants SET status = $2, updated_at = now() WHERE slug = $1', [slug, status]);
      return { previous, changed: true };
    });
  }

  /**
   * Unfinished operations whose process is gone, oldest first: its liveness lock
   * is released, and none of its control-database sessions is connected (so a
   * process whose liveness session alone broke is not taken for dead).
   */
  async dead(): Promise<Operation[]> {
    const { rows } = await this.pool.query(
      `SELECT ${COLUMNS} FROM flotilla.operations o
        WHERE finished_at IS NULL AND NOT ${processAlive('o.runner_key', '$1')}
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name IN ('flotilla registry ' || o.owner, 'flotilla runner ' || o.owner))
        ORDER BY started_at`,
      [LOCK_NAMESPACES.runner],
    );
    return rows.map(toOperation);
  }

  /**
   * Takes a dead operation for this process to finish or undo; false when
   * another live process already has it, or it is finished.
   */
  async takeOver(id: string, sweeperKey: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE flotilla.operations o SET sweeper_key = $2 WHERE id = $1 AND finished_at IS NULL
          AND (sweeper_key IS NULL OR sweeper_key = $2 OR NOT ${processAlive('o.sweeper_key', '$3')})`,
      [id, sweeperKey, LOCK_NAMESPACES.runner],
    );
    return (rowCount ?? 0) > 0;
  }

  /** The last operation of a command on a tenant that has ended, and how. */
  async lastEnded(command: string, tenant: string): Promise<{ outcome: OperationOutcome; arguments: Record<string, unknown> } | undefined> {
    const { rows } = await this.pool.query<{ outcome: OperationOutcome; arguments: Record<string, unknown> }>(
      `SELECT outcome, arguments FROM flotilla.operations WHERE command = $1 AND tenant = $2 AND finished_at IS NOT NULL ORDER BY started_at DESC LIMIT 1`,
      [command, tenant],
    );
    return rows[0];
  }

  /** Whether another unfinished operation concerns this tenant. */
  async othersOn(tenant: string, except: string): Promise<boolean> {
    const { rows } = await this.pool.query('SELECT 1 FROM flotilla.operations WHERE tenant = $1 AND id <> $2 AND finished_at IS NULL LIMIT 1', [tenant, except]);
    return rows.length > 0;
  }

  /** The operation as recorded now (its phase and the status it changed). */
  async current(id: string): Promise<Operation> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM flotilla.operations WHERE id = $1`, [id]);
    return toOperation(rows[0]);
  }

  /** Lets go of a dead operation this process took over but could not clear: another command tries again. */
  async release(id: string): Promise<void> {
    await this.pool.query('UPDATE flotilla.operations SET sweeper_key = NULL WHERE id = $1 AND finished_at IS NULL', [id]);
  }
}

function toOperation(r: Record<string, unknown>): Operation {
  return {
    id: String(r.id),
    command: String(r.command),
    tenant: (r.tenant as string | null) ?? null,
    arguments: (r.arguments as Record<string, unknown>) ?? {},
    actor: String(r.actor),
    runnerKey: Number(r.runner_key),
    previousStatus: (r.previous_status as string | null) ?? null,
    statusTenant: (r.status_tenant as string | null) ?? null,
    phase: (r.phase as string | null) ?? null,
    startedAt: (r.started_at as Date).toISOString(),
  };
}
