/** One line of `--json` output per event: for CI logs, and for the dashboard to come. */
export type RolloutEvent =
  | { event: 'rollout.started'; rollout: string; tenants: number; pending: number; skipped: number; waves: number; startedBy: string }
  | { event: 'rollout.joined'; rollout: string; runner: string }
  | { event: 'rollout.resumed'; rollout: string; runner: string; rechecked: string[]; retried: string[] }
  | { event: 'wave.started'; rollout: string; wave: number; runner: string }
  | { event: 'canary.check'; rollout: string; tenants: string[]; passed: boolean; exitCode: number | null }
  | { event: 'tenant.started'; rollout: string; tenant: string; server: string; wave: number; attempt: number; runner: string }
  | {
      event: 'tenant.succeeded';
      rollout: string;
      tenant: string;
      from: string | null;
      to: string | null;
      migrations: number;
      durationMs: number;
      backup: string | null;
      runner: string;
      details: { statements: number; rewritten: number; outsideTransaction: number; splits: string[]; verifiedTables: number; allowedLosses: string[] };
    }
  | { event: 'tenant.skipped'; rollout: string; tenant: string; reason: string; durationMs: number; runner: string }
  | { event: 'tenant.failed'; rollout: string; tenant: string; code: string; message: string; durationMs: number; runner: string }
  | { event: 'rollout.halted'; rollout: string; reason: string }
  | { event: 'rollout.finished'; rollout: string; status: string; succeeded: number; failed: number; skipped: number; pending: number; durationMs: number };

export type EventSink = (event: RolloutEvent & { at?: string }) => void;
