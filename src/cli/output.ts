import Table from 'cli-table3';
import { type ErrorFamily, toFlotillaError } from '../core/errors.js';
import { redactSecrets, redactValue } from '../core/redact.js';

export interface Output {
  json: boolean;
}

// Everything the CLI prints goes through these, and through redaction: no password reaches a terminal or a log.

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(redactValue(value), null, 2)}\n`);
}

/** One JSON object on one line (the events of `migrate`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(redactValue(value))}\n`);
}

export function printTable(head: string[], rows: (string | number | null)[][]): void {
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) table.push(row.map((cell) => (cell === null ? '-' : redactSecrets(String(cell)))));
  process.stdout.write(`${table.toString()}\n`);
}

export function line(text = ''): void {
  process.stdout.write(`${redactSecrets(text)}\n`);
}

/**
 * The CLI's exit codes. An error's exit code is its family's (`ERROR_FAMILIES`
 * in src/core/errors.ts), never its code's: every code of a family exits alike,
 * and a new code needs no entry here. Every error that is not a FlotillaError is
 * made one by `toFlotillaError`: a lost or refused connection is `unavailable`
 * (8), anything else `internal` (70).
 *
 * |  0 | success |
 * |  1 | not an error: `status` found a problem on some tenant, `lint` found an error |
 * |  2 | usage: a flag, argument or slug is wrong (also commander's own parse errors) |
 * |  3 | config: the config file is missing or invalid, a URL is invalid |
 * |  4 | definition: the migrations directory is invalid |
 * |  5 | refused: changed or missing history, out of order, lint, storage not Flotilla's |
 * |  6 | failed: a migration, provisioning or verification failed (also `migrate` when a tenant failed) |
 * |  7 | locked: another process holds the tenant |
 * |  8 | unavailable: PostgreSQL cannot be reached or went away |
 * |  9 | not-found: no such tenant, server, backup, rollout or version, or the name is taken |
 * | 10 | tooling: pg_dump/pg_restore missing or failed, a backup tampered with |
 * | 11 | unfinished: an unfinished rollout (also `migrate` when its rollout halted) |
 * | 70 | internal: a bug in Flotilla (EX_SOFTWARE of sysexits.h) |
 *
 * The README's exit-code table (## Errors) lists the codes of each family.
 */
export const EXIT_CODE_BY_FAMILY: Readonly<Record<ErrorFamily, number>> = Object.freeze({
  usage: 2,
  config: 3,
  definition: 4,
  refused: 5,
  failed: 6,
  locked: 7,
  unavailable: 8,
  'not-found': 9,
  tooling: 10,
  unfinished: 11,
  forbidden: 12,
  gone: 13,
  internal: 70,
});

/** The exit code for anything thrown: its family's. */
export function exitCodeOf(error: unknown): number {
  return EXIT_CODE_BY_FAMILY[toFlotillaError(error).family];
}

/** Prints an error with its code and what to do, and returns the exit code. */
export function reportError(error: unknown, json: boolean): number {
  const flotillaError = toFlotillaError(error);
  if (json) {
    printJson({ error: flotillaError.toJSON() });
  } else {
    process.stderr.write(`${redactSecrets(`error ${flotillaError.code}: ${flotillaError.message}`)}\n`);
    if (flotillaError.hint) process.stderr.write(`${redactSecrets(`  what to do: ${flotillaError.hint}`)}\n`);
  }
  return EXIT_CODE_BY_FAMILY[flotillaError.family];
}
