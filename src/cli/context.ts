import type { ResolvedConfig } from '../config/config.js';
import { loadConfig } from '../config/config.js';
import { Flotilla } from '../flotilla.js';

export interface GlobalOptions {
  config?: string;
}

export function cliConfig(options: GlobalOptions): Promise<ResolvedConfig> {
  return loadConfig({ file: options.config });
}

/** Opens Flotilla for one command and always closes it (stopping an embedded server it started). */
export async function withFlotilla<T>(options: GlobalOptions, fn: (flotilla: Flotilla) => Promise<T>): Promise<T> {
  const flotilla = await Flotilla.open({ config: await cliConfig(options) });
  try {
    return await fn(flotilla);
  } finally {
    await flotilla.close();
  }
}
