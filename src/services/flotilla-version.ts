import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version of the installed Flotilla package, read from its package.json (two levels above this compiled file). */
export function flotillaVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
