import type { AuditEventInput } from '../control/audit-log.js';
import { FlotillaError, isFlotillaError } from '../core/errors.js';
import type { Registry } from '../control/registry.js';
import type { OperationContext } from '../core/operation.js';
import type { TenantStatus } from '../core/tenant.js';
import type { OwnedStorage } from '../tenancy/owned-storage.js';
import { recoverOperation } from './recovery.js';

export type { OperationContext };

export interface OperationSpec {
  readonly command: string;
  readonly tenant?: string | null;
  readonly arguments: Record<string, unknown>;
}

export interface OperationsDeps {
  readonly registry: Registry;
  readonly storage: OwnedStorage;
  readonly actor: string;
  /** This process's liveness: the key of the lock its session holds, and whether that session still works. */
  liveness(): Promise<{ key: number; alive(): boolean }>;
}

/**
 * The one path of every mutating command: its start and end are recorded (with
 * their audit events), and before it starts, the commands whose process died
 * are finished or undone, so that whatever they left behind is cleared.
 */
export class Operations {
  constructor(private readonly deps: OperationsDeps) {}

  /** The same wrapper, recording another actor (a request's, for the HTTP API). */
  as(actor: string): Operations {
    return new Operations({ ...this.deps, actor });
  }

  async run<T>(spec: OperationSpec, fn: (op: OperationContext) => Promise<{ result: T; record?: Partial<AuditEventInput> }>): Promise<T> {
    const started = performance.now();
    const liveness = await this.deps.liveness();
    await this.recoverInterrupted();
    const { registry, actor } = this.deps;
    const operation = await registry.operations.begin({ command: spec.command, tenant: spec.tenant ?? null, arguments: spec.arguments, actor, runnerKey: liveness.key });
    const context: OperationContext = {
      id: operation.id,
      setPhase: (phase) => registry.operations.setPhase(operation.id, phase),
      setTenantStatus: async (slug, status, unlessIn) =>
        (await registry.operations.setTenantStatus(operation.id, slug, status, unlessIn)) as { previous: TenantStatus; changed: boolean },
      restoreTenantStatus: (slug, status, previous) => registry.operations.restoreTenantStatus(operation.id, slug, status, previous),
      assertAlive: () => {
        if (!liveness.alive()) {
          throw new FlotillaError('FLO_CONNECTION_FAILED', `The connection to the control database that shows this ${spec.command} is alive broke: it stops here.`, {
            hint: 'Check the control database, then run the command again: it finishes or undoes what this one left.',
          });
        }
      },
    };
    const end = { command: spec.command, arguments: spec.arguments, tenant: spec.tenant ?? null };
    try {
      const { result, record } = await fn(context);
      // A command that ran to its end may still report failure (tenants of a rollout that failed).
      const outcome = record?.outcome === 'failed' ? 'failed' : 'succeeded';
      await registry.operations.finish(operation.id, outcome, actor, { ...end, ...record, outcome, durationMs: performance.now() - started });
      return result;
    } catch (error) {
      // What a failed command leaves is cleared by the same rules as what a killed one leaves.
      const cleared = await recoverOperation(await registry.operations.current(operation.id), { registry, storage: this.deps.storage }).then(
        () => true,
        () => false,
      );
      const code = isFlotillaError(error) ? error.code : 'FLO_INTERNAL';
      const event = { ...end, outcome: 'failed' as const, errorCode: code, errorMessage: (error as Error).message, durationMs: performance.now() - started };
      // Not cleared (its server went away, say): the operation stays open, and the next command after
      // this process ends clears it as an interrupted one.
      if (cleared) await registry.operations.finish(operation.id, 'failed', actor, event).catch(() => undefined);
      else await registry.audit.record({ ...event, operationId: operation.id }).catch(() => undefined);
      throw error;
    }
  }

  /** Records an event of a running command (one tenant's upgrade) under this actor. */
  async record(event: AuditEventInput): Promise<void> {
    await this.deps.registry.audit.record({ ...event, actor: this.deps.actor });
  }

  /**
   * Finishes or undoes every operation whose process died, and puts back tenants
   * that dead rollout runners left `upgrading`. Each dead operation is taken by
   * one process only.
   */
  async recoverInterrupted(): Promise<void> {
    const { registry, storage, actor } = this.deps;
    const liveness = await this.deps.liveness();
    await registry.rollouts.recoverDeadRunners();
    for (const operation of await registry.operations.dead()) {
      if (!(await registry.operations.takeOver(operation.id, liveness.key))) continue;
      const started = performance.now();
      let outcome: string;
      try {
        outcome = await recoverOperation(operation, { registry, storage });
      } catch (error) {
        // One that cannot be cleared now (its server is down) must not stop every other command: it is
        // left for a later one, and said on the audit trail.
        await registry.operations.release(operation.id);
        await registry.audit
          .record({
            command: operation.command,
            arguments: operation.arguments,
            tenant: operation.tenant,
            outcome: 'failed',
            errorCode: isFlotillaError(error) ? error.code : 'FLO_INTERNAL',
            errorMessage: `clearing what an interrupted ${operation.command} left failed, tried again by the next command: ${(error as Error).message}`,
            durationMs: performance.now() - started,
            operationId: operation.id,
          })
          .catch(() => undefined);
        continue;
      }
      await registry.operations.finish(operation.id, 'interrupted', operation.actor, {
        command: operation.command,
        arguments: operation.arguments,
        tenant: operation.tenant,
        outcome: 'interrupted',
        errorMessage: `interrupted: its process ended before the command did (${outcome}; cleared by ${actor})`,
        durationMs: performance.now() - started,
      });
    }
  }
}
