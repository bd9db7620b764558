import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { LOCK_NAMESPACES, processAlive } from '../postgres/lock-namespaces.js';
import { inTransaction } from './transaction.js';

/** First key of a runner's liveness lock (session-level, held while the runner lives). */
export const RUNNER_LOCK_NAMESPACE = LOCK_NAMESPACES.runner;
/** A tenant's registry status after its upgrade: what it was before (`active` when that is unknown). */
const RESTORED_STATUS = `CASE WHEN d.previous_status IS NULL OR d.previous_status = 'upgrading' THEN 'active' ELSE d.previous_status END`;

/** First key of the transaction lock that serializes claims on one rollout. */
const CLAIM_LOCK_NAMESPACE = LOCK_NAMESPACES.rolloutClaim;

/** SQL: the liveness lock of the runner whose key is in `keyColumn` is held (its runner lives). `$2` is RUNNER_LOCK_NAMESPACE. */
function runnerAlive(keyColumn: string): string {
  return processAlive(keyColumn, '$2');
}

/** Rollouts with their counts per state; a WHERE, ORDER BY or LIMIT follows. */
const ROLLOUTS = `SELECT r.*, c.* FROM flotilla.rollouts r,
   LATERAL (SELECT count(*)::int AS total,
                   count(*) FILTER (WHERE state = 'pending')::int AS pending,
                   count(*) FILTER (WHERE state = 'running')::int AS running,
                   count(*) FILTER (WHERE state = 'succeeded')::int AS succeeded,
                   count(*) FILTER (WHERE state = 'failed')::int AS failed,
                   count(*) FILTER (WHERE state = 'skipped')::int AS skipped,
                   min(wave) FILTER (WHERE state IN ('pending', 'running')) AS current_wave,
                   count(DISTINCT wave) FILTER (WHERE state <> 'skipped')::int AS waves
              FROM flotilla.rollout_tenants WHERE rollout_id = r.id) c`;

export type RolloutStatus = 'running' | 'halted' | 'finished' | 'cancelled';
export type TenantState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface RolloutOptions {
  readonly canary?: string;
  readonly canaryCheck?: string;
  readonly waveSize?: number;
  readonly concurrency: number;
  readonly maxFailures?: string;
  readonly order?: string;
  /** Failures tolerated, resolved from maxFailures when the rollout was created. */
  readonly budget?: number;
}

export interface RolloutCounts {
  readonly total: number;
  readonly pending: number;
  readonly running: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

export interface Rollout {
  readonly id: string;
  readonly status: RolloutStatus;
  readonly target: string | null;
  readonly options: RolloutOptions;
  readonly selection: Record<string, unknown>;
  readonly startedBy: string;
  readonly haltReason: string | null;
  readonly canaryCheck: string | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly counts: RolloutCounts;
  /** The wave now running (lowest wave with unfinished tenants); null when none. */
  readonly currentWave: number | null;
  /** Waves with tenants to upgrade, the canary wave included. */
  readonly waves: number;
}

export interface RolloutTenant {
  readonly tenant: string;
  readonly server: string;
  readonly wave: number;
  readonly position: number;
  readonly state: TenantState;
  readonly attempts: number;
  readonly runner: string | null;
  readonly versionBefore: string | null;
  readonly versionAfter: string | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly backupId: string | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

/** A runner: a name for people, and the key of the session advisory lock it holds while it lives. */
export interface RunnerIdentity {
  readonly name: string;
  readonly key: number;
}

export type Claim =
  | { readonly kind: 'tenant'; readonly tenant: string; readonly server: string; readonly wave: number; readonly attempts: number }
  | { readonly kind: 'canary-check'; readonly tenants: readonly string[]; readonly command: string }
  | { readonly kind: 'wait' }
  | { readonly kind: 'done'; readonly status: RolloutStatus };

/** Rollouts and their tenants in the control database; every runner coordinates through these rows. */
export class RolloutStore {
  constructor(private readonly pool: pg.Pool) {}

  async create(input: {
    runner: RunnerIdentity;
    target: string | null;
    options: RolloutOptions;
    selection: Record<string, unknown>;
    startedBy: string;
    tenants: readonly { tenant: string; server: string; wave: number; position: number; state: 'pending' | 'skipped'; versionBefore: string | null }[];
  }): Promise<string> {
    return this.inTransaction(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO flotilla.rollouts (status, target, options, selection, started_by) VALUES ('running', $1, $2, $3, $4) RETURNING id`,
        [input.target, JSON.stringify(input.options), JSON.stringify(input.selection), input.startedBy],
      );
      const id = rows[0]!.id;
      await client.query('INSERT INTO flotilla.rollout_runners (rollout_id, runner, runner_key) VALUES ($1, $2, $3)', [id, input.runner.name, input.runner.key]);
      const t = input.tenants;
      await client.query(
        `INSERT INTO flotilla.rollout_tenants (rollout_id, tenant, server, wave, position, state, version_before, version_after, finished_at)
         SELECT $1, u.tenant, u.server, u.wave, u.position, u.state, u.version, CASE WHEN u.state = 'skipped' THEN u.version END, CASE WHEN u.state = 'skipped' THEN clock_timestamp() END
           FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[]) AS u(tenant, server, wave, position, state, version)`,
        [id, t.map((x) => x.tenant), t.map((x) => x.server), t.map((x) => x.wave), t.map((x) => x.position), t.map((x) => x.state), t.map((x) => x.versionBefore)],
      );
      return id;
    });
  }

  private inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  async get(id: string): Promise<Rollout | undefined> {
    const { rows } = await this.pool.query(`${ROLLOUTS} WHERE r.id::text = $1 OR r.id::text LIKE $1 || '%'`, [id.toLowerCase()]);
    return rows.length === 1 ? toRollout(rows[0]) : undefined;
  }

  async list(limit = 50): Promise<Rollout[]> {
    const { rows } = await this.pool.query(`${ROLLOUTS} ORDER BY r.created_at DESC LIMIT $1`, [limit]);
    return rows.map(toRollout);
  }

  async tenants(id: string): Promise<RolloutTenant[]> {
    const { rows } = await this.pool.query(`SELECT * FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`, [id]);
    return rows.map((r) => ({
      tenant: r.tenant,
      server: r.server,
      wave: r.wave,
      position: r.position,
      state: r.state,
      attempts: r.attempts,
      runner: r.runner,
      versionBefore: r.version_before,
      versionAfter: r.version_after,
      errorCode: r.error_code,
      errorMessage: r.error_message,
      backupId: r.backup_id,
      startedAt: r.started_at?.toISOString() ?? null,
      finishedAt: r.finished_at?.toISOString() ?? null,
    }));
  }

  async setStatus(id: string, status: RolloutStatus, haltReason: string | null = null, onlyIf: RolloutStatus[] = ['running']): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE flotilla.rollouts SET status = $2, halt_reason = coalesce($3, halt_reason), updated_at = clock_timestamp(),
              finished_at = CASE WHEN $2 IN ('finished', 'cancelled') THEN clock_timestamp() ELSE finished_at END
        WHERE id = $1 AND status = ANY($4)`,
      [id, status, haltReason, onlyIf],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * The next piece of work for a runner, decided under a lock on the rollout so
   * that runners never take the same tenant and per-server limits hold across
   * runners: a tenant of the current wave (a later wave starts only when every
   * earlier tenant is done, and after the canary check), the canary check, a
   * wait, or done.
   */
  async claim(id: string, runner: { name: string; key: number }, serverLimits: ReadonlyMap<string, number>): Promise<Claim> {
    return this.inTransaction(async (client): Promise<Claim> => {
      // One round trip for the lock and the rollout's state: claims are on every tenant's path.
      const { rows: states } = await client.query<{
        status: RolloutStatus;
        options: RolloutOptions;
        canary_check: string | null;
        wave: number | null;
        busy: number;
        canaries: string[] | null;
      }>(
        `SELECT r.status, r.options, r.canary_check,
                (SELECT min(wave) FROM flotilla.rollout_tenants WHERE rollout_id = r.id AND state IN ('pending', 'running')) AS wave,
                (SELECT count(*)::int FROM flotilla.rollout_tenants WHERE rollout_id = r.id AND state = 'running') AS busy,
                (SELECT array_agg(tenant ORDER BY position) FROM flotilla.rollout_tenants WHERE rollout_id = r.id AND wave = 0) AS canaries
           FROM (SELECT pg_advisory_xact_lock($2, hashtext($1::text))) AS locked, flotilla.rollouts r WHERE r.id = $1::uuid`,
        [id, CLAIM_LOCK_NAMESPACE],
      );
      const rollout = states[0];
      if (rollout?.status !== 'running') return { kind: 'done', status: rollout?.status ?? 'cancelled' };
      if (rollout.wave === null) {
        await client.query(`UPDATE flotilla.rollouts SET status = 'finished', finished_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1`, [id]);
        return { kind: 'done', status: 'finished' };
      }
      const command = rollout.options.canaryCheck;
      const canaries = rollout.canaries ?? [];
      if (rollout.wave > 0 && command && rollout.canary_check !== 'passed' && canaries.length > 0) {
        if (rollout.canary_check !== null) return { kind: 'wait' };
        await client.query(`UPDATE flotilla.rollouts SET canary_check = 'running' WHERE id = $1`, [id]);
        return { kind: 'canary-check', tenants: canaries, command };
      }
      if (rollout.busy >= rollout.options.concurrency) return { kind: 'wait' };
      const limits = [...serverLimits];
      // Pick, mark running and mark the tenant upgrading, in one statement.
      const { rows } = await client.query<{ tenant: string; server: string; attempts: number }>(
        `WITH running AS (
           SELECT server, count(*) AS n FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND state = 'running' GROUP BY server),
         limits AS (SELECT * FROM unnest($3::text[], $4::int[]) AS l(server, n)),
         candidate AS (
           SELECT rt.tenant FROM flotilla.rollout_tenants rt
             LEFT JOIN running r ON r.server = rt.server LEFT JOIN limits l ON l.server = rt.server
            WHERE rt.rollout_id = $1 AND rt.state = 'pending' AND rt.wave = $2 AND coalesce(r.n, 0) < coalesce(l.n, 4)
            ORDER BY rt.position FOR UPDATE OF rt SKIP LOCKED LIMIT 1),
         claimed AS (
           UPDATE flotilla.rollout_tenants rt SET state = 'running', runner = $5, runner_key = $6, attempts = attempts + 1, started_at = clock_timestamp(),
                  previous_status = (SELECT status FROM flotilla.tenants WHERE slug = rt.tenant)
             FROM candidate c WHERE rt.rollout_id = $1 AND rt.tenant = c.tenant
           RETURNING rt.tenant, rt.server, rt.attempts),
         -- The runtime answers 503 for this tenant alone while it is upgraded.
         marked AS (UPDATE flotilla.tenants t SET status = 'upgrading', updated_at = now() FROM claimed c WHERE t.slug = c.tenant AND t.status = 'active')
         SELECT * FROM claimed`,
        [id, rollout.wave, limits.map(([s]) => s), limits.map(([, n]) => n), runner.name, runner.key],
      );
      const row = rows[0];
      if (!row) return { kind: 'wait' };
      return { kind: 'tenant', tenant: row.tenant, server: row.server, wave: rollout.wave, attempts: row.attempts };
    });
  }

  async finish(
    id: string,
    tenant: string,
    result: {
      state: 'succeeded' | 'failed' | 'skipped';
      versionBefore: string | null;
      versionAfter: string | null;
      errorCode?: string | null;
      errorMessage?: string | null;
      backupId?: string | null;
    },
  ): Promise<void> {
    // The tenant's row and its registry status back to what it was, in one statement.
    await this.pool.query(
      `WITH done AS (
         UPDATE flotilla.rollout_tenants SET state = $3, version_before = coalesce($4, version_before), version_after = $5, error_code = $6, error_message = $7,
                backup_id = $8, finished_at = clock_timestamp()
          WHERE rollout_id = $1 AND tenant = $2 RETURNING tenant, previous_status)
       UPDATE flotilla.tenants t SET status = ${RESTORED_STATUS}, updated_at = now()
         FROM done d WHERE t.slug = d.tenant AND t.status = 'upgrading'`,
      [id, tenant, result.state, result.versionBefore, result.versionAfter, result.errorCode ?? null, result.errorMessage ?? null, result.backupId ?? null],
    );
  }

  async setCanaryCheck(id: string, result: 'passed' | 'failed'): Promise<void> {
    await this.pool.query('UPDATE flotilla.rollouts SET canary_check = $2, updated_at = clock_timestamp() WHERE id = $1', [id, result]);
  }

  /**
   * Puts back to pending the tenants a dead runner left `running` (its liveness
   * lock is gone), restoring their registry status; the engine rechecks each
   * against its own history, so nothing is applied twice. With `retry`, also
   * failed tenants (by error code, or all).
   */
  async recover(id: string, retry: 'transient' | 'all' | 'none'): Promise<{ reset: string[]; retried: string[] }> {
    return this.inTransaction(async (client) => {
      const reset = await client.query<{ tenant: string }>(
        `WITH d AS (
           UPDATE flotilla.rollout_tenants rt SET state = 'pending', runner = NULL, runner_key = NULL
            WHERE rollout_id = $1 AND state = 'running' AND NOT ${runnerAlive('rt.runner_key')}
            RETURNING tenant, previous_status),
         restored AS (UPDATE flotilla.tenants t SET status = ${RESTORED_STATUS}, updated_at = now() FROM d WHERE t.slug = d.tenant AND t.status = 'upgrading')
         SELECT tenant FROM d`,
        [id, RUNNER_LOCK_NAMESPACE],
      );
      // A canary check that failed, or whose runner died while it ran, runs again.
      await client.query(`UPDATE flotilla.rollouts SET canary_check = NULL WHERE id = $1 AND canary_check IN ('running', 'failed')`, [id]);
      const codes = retry === 'all' ? null : retry === 'transient' ? ['FLO_CONNECTION_FAILED', 'FLO_TENANT_LOCKED'] : [];
      const retried = await client.query<{ tenant: string }>(
        `UPDATE flotilla.rollout_tenants SET state = 'pending', runner = NULL, runner_key = NULL
          WHERE rollout_id = $1 AND state = 'failed' AND ($2::text[] IS NULL OR error_code = ANY($2)) RETURNING tenant`,
        [id, codes],
      );
      return { reset: reset.rows.map((r) => r.tenant), retried: retried.rows.map((r) => r.tenant) };
    });
  }

  /**
   * In every rollout, the tenants a dead runner left `running` go back to pending
   * and their registry status back to what it was: no tenant stays `upgrading`
   * because the process upgrading it was killed.
   */
  async recoverDeadRunners(): Promise<string[]> {
    const { rows } = await this.pool.query<{ tenant: string }>(
      `WITH d AS (
         UPDATE flotilla.rollout_tenants rt SET state = 'pending', runner = NULL, runner_key = NULL
          WHERE state = 'running' AND NOT ${processAlive('rt.runner_key', '$1')}
          RETURNING tenant, previous_status),
       restored AS (UPDATE flotilla.tenants t SET status = ${RESTORED_STATUS}, updated_at = now() FROM d WHERE t.slug = d.tenant AND t.status = 'upgrading')
       SELECT tenant FROM d`,
      [RUNNER_LOCK_NAMESPACE],
    );
    return rows.map((r) => r.tenant);
  }

  /** Records a runner working on this rollout (its liveness lock is already held). */
  async addRunner(id: string, runner: RunnerIdentity): Promise<void> {
    await this.pool.query('INSERT INTO flotilla.rollout_runners (rollout_id, runner, runner_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [id, runner.name, runner.key]);
  }

  /** How many runners of this rollout are alive (their liveness lock is held). */
  async liveRunners(id: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM flotilla.rollout_runners r WHERE r.rollout_id = $1 AND ${runnerAlive('r.runner_key')}`, [
      id,
      RUNNER_LOCK_NAMESPACE,
    ]);
    return rows[0]?.n ?? 0;
  }

  /** Rollouts that did not finish (running with no live runner, or halted), newest first. */
  async unfinished(): Promise<Rollout[]> {
    const { rows } = await this.pool.query(`${ROLLOUTS} WHERE r.status IN ('running', 'halted') ORDER BY r.created_at DESC`);
    return rows.map(toRollout);
  }
}

function toRollout(r: Record<string, unknown>): Rollout {
  return {
    id: String(r.id),
    status: r.status as RolloutStatus,
    target: (r.target as string | null) ?? null,
    options: r.options as RolloutOptions,
    selection: r.selection as Record<string, unknown>,
    startedBy: String(r.started_by),
    haltReason: (r.halt_reason as string | null) ?? null,
    canaryCheck: (r.canary_check as string | null) ?? null,
    createdAt: (r.created_at as Date).toISOString(),
    finishedAt: r.finished_at ? (r.finished_at as Date).toISOString() : null,
    counts: {
      total: r.total as number,
      pending: r.pending as number,
      running: r.running as number,
      succeeded: r.succeeded as number,
      failed: r.failed as number,
      skipped: r.skipped as number,
    },
    currentWave: (r.current_wave as number | null) ?? null,
    waves: (r.waves as number | null) ?? 0,
  };
}

/** A new runner identity, and a session holding its liveness lock (end the session to release it). */
export async function becomeRunner(client: pg.Client): Promise<RunnerIdentity> {
  const runner = { name: `${hostname()}:${process.pid}:${randomInt(1e6)}`, key: randomInt(1, 2 ** 31 - 1) };
  await client.query('SELECT pg_advisory_lock($1, $2)', [RUNNER_LOCK_NAMESPACE, runner.key]);
  return runner;
}
