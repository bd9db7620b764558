import Table from 'cli-table3';
import { FlotillaError, isFlotillaError } from '../core/errors.js';
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

/** Prints an error with its code and what to do, and returns the exit code. */
export function reportError(error: unknown, json: boolean): number {
  const flotillaError = isFlotillaError(error)
    ? error
    : new FlotillaError('FLO_INTERNAL', `Internal error: ${error instanceof Error ? error.message : String(error)}`, {
        hint: 'This is a bug in Flotilla: please report it with the command you ran and this message.',
      });
  if (json) {
    printJson({ error: flotillaError.toJSON() });
  } else {
    process.stderr.write(`${redactSecrets(`error ${flotillaError.code}: ${flotillaError.message}`)}\n`);
    if (flotillaError.hint) process.stderr.write(`${redactSecrets(`  what to do: ${flotillaError.hint}`)}\n`);
  }
  return flotillaError.exitCode;
}
