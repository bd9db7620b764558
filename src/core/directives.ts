import { FlotillaError } from './errors.js';

/** Directives a migration may carry in SQL comments, `-- flotilla:<name>`. */
export interface Directives {
  /** Run every statement of the file on its own, outside any transaction. */
  noTransaction: boolean;
}

const KNOWN = new Set(['no-transaction']);

/**
 * Reads `-- flotilla:` comment lines. An unknown name is an error rather than
 * ignored, so that a typo such as `no-transation` cannot silently change how a
 * migration runs.
 */
export function parseDirectives(sql: string, file: string): Directives {
  const directives: Directives = { noTransaction: false };
  const lines = sql.split('\n');
  lines.forEach((text, i) => {
    const match = /^\s*--\s*flotilla:([\w-]+)/.exec(text);
    if (!match) return;
    const name = match[1]!;
    if (!KNOWN.has(name)) {
      throw new FlotillaError('FLO_DIRECTIVE_INVALID', `${file}:${i + 1}: unknown directive "flotilla:${name}".`, {
        hint: `Known directives: ${[...KNOWN].map((k) => `-- flotilla:${k}`).join(', ')}.`,
        meta: { file, line: i + 1, directive: name },
      });
    }
    if (name === 'no-transaction') directives.noTransaction = true;
  });
  return directives;
}
