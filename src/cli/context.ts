import { InvalidArgumentError } from 'commander';
import type { ResolvedConfig } from '../config/config.js';
import { loadConfig } from '../config/config.js';
import type { Flotilla } from '../flotilla.js';

export interface GlobalOptions {
  config?: string;
}

/** Commander argument parser of a repeatable option: every value given, in order. */
export function repeatable(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The same, each value one of `choices` (anything else is refused, naming them). */
export function repeatableChoice(choices: readonly string[]): (value: string, previous?: string[]) => string[] {
  return (value, previous = []) => {
    if (!choices.includes(value)) throw new InvalidArgumentError(`Allowed choices are ${choices.join(', ')}.`);
    return [...previous, value];
  };
}

export function cliConfig(options: GlobalOptions): Promise<ResolvedConfig> {
  return loadConfig({ file: options.config });
}

/** Opens Flotilla for one command and always closes it (stopping an embedded server it started). */
export async function withFlotilla<T>(options: GlobalOptions, fn: (flotilla: Flotilla) => Promise<T>): Promise<T> {
  // Loaded when a command needs it: `--help` and `--version` start without the engine.
  const { Flotilla } = await import('../flotilla.js');
  const flotilla = await Flotilla.open({ config: await cliConfig(options) });
  try {
    return await fn(flotilla);
  } finally {
    await flotilla.close();
  }
}
