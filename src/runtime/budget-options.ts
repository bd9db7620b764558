import { FlotillaError } from '../core/errors.js';

export interface BudgetOptions {
  /** Connections open at once across every database and server, at most: the ceiling never crossed (default 20). */
  readonly maxConnections?: number;
  /** Connections one tenant holds at once, at most, so that a busy tenant cannot starve the rest (default: a quarter of the ceiling). */
  readonly maxPerTenant?: number;
  /** A connection idle this long is closed, and a database with none left is forgotten (default 30 s). */
  readonly idleTimeoutMs?: number;
  /** How long a query waits for a connection before it fails with FLO_RUNTIME_BUSY, answered 503 (default 5 s). */
  readonly queueTimeoutMs?: number;
  /** How long opening one connection may take (default 10 s). */
  readonly connectTimeoutMs?: number;
}

export interface BudgetStats {
  /** Connections open now, opening or closing included. */
  readonly open: number;
  readonly idle: number;
  readonly inUse: number;
  readonly waiting: number;
  readonly pools: number;
  /** The most connections ever open at once. */
  readonly peak: number;
  readonly opened: number;
  readonly evicted: number;
  readonly timedOut: number;
  /** Sessions handed out to queries. */
  readonly checkouts: number;
  /** Checkouts that first reset a session another tenant had used. */
  readonly rebinds: number;
}

/** A budget setting, checked: a positive number. */
export function positive(name: string, value: number): number {
  if (Number.isFinite(value) && value > 0) return value;
  throw new FlotillaError('FLO_USAGE', `budget.${name} must be a positive number, not ${value}.`, { hint: `Set budget.${name} to a number above 0.` });
}
