import Table from 'cli-table3';
import { FlotillaError, isFlotillaError } from '../core/errors.js';

export interface Output {
  json: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(head: string[], rows: (string | number | null)[][]): void {
  const table = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) table.push(row.map((cell) => (cell === null ? '-' : String(cell))));
  process.stdout.write(`${table.toString()}\n`);
}

export function line(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Prints an error with its code and what to do, and returns the exit code. */
export function reportError(error: unknown, json: boolean): number {
  const flotillaError = isFlotillaError(error)
    ? error
    : new FlotillaError('FLO_USAGE', error instanceof Error ? error.message : String(error), { hint: 'This is unexpected: please report it with the command you ran.' });
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: flotillaError.toJSON() }, null, 2)}\n`);
  } else {
    process.stderr.write(`error ${flotillaError.code}: ${flotillaError.message}\n`);
    if (flotillaError.hint) process.stderr.write(`  what to do: ${flotillaError.hint}\n`);
  }
  return isFlotillaError(error) ? flotillaError.exitCode : 1;
}
