import { FlotillaError } from './errors.js';
import { lineComments } from './sql/chunks.js';

/** `-- flotilla:allow CODE[,CODE] reason="…"`: lets one statement do what lint (and verification) would refuse. */
export interface AllowDirective {
  readonly line: number;
  readonly codes: readonly string[];
  /** Empty when the directive gives no reason, which lint reports as an error. */
  readonly reason: string;
}

/** Directives a migration may carry in SQL comments, `-- flotilla:<name>`. */
export interface Directives {
  /** Run every statement of the file on its own, outside any transaction. */
  readonly noTransaction: boolean;
  readonly allows: readonly AllowDirective[];
}

const KNOWN = new Set(['no-transaction', 'allow']);

/**
 * Reads `-- flotilla:` comments: real `--` comments only, as PostgreSQL's lexer
 * sees them, never the same text inside a string, a quoted identifier or a
 * dollar-quoted body. An unknown name is an error rather than ignored, so that a
 * typo such as `no-transation` cannot silently change how a migration runs.
 */
export function parseDirectives(sql: string, file: string): Directives {
  let noTransaction = false;
  const allows: AllowDirective[] = [];
  if (!sql.includes('flotilla:')) return { noTransaction, allows };
  for (const { line, text } of lineComments(sql)) {
    const match = /^--\s*flotilla:([\w-]+)(.*)$/.exec(text);
    if (!match) continue;
    const name = match[1]!;
    if (!KNOWN.has(name)) {
      throw new FlotillaError('FLO_DIRECTIVE_INVALID', `${file}:${line}: unknown directive "flotilla:${name}".`, {
        hint: `Known directives: -- flotilla:no-transaction, -- flotilla:allow <CODE> reason="why this is safe".`,
        meta: { file, line, directive: name },
      });
    }
    if (name === 'no-transaction') noTransaction = true;
    if (name === 'allow') allows.push(parseAllow(match[2] ?? '', line));
  }
  return { noTransaction, allows };
}

function parseAllow(rest: string, line: number): AllowDirective {
  const reason = /reason\s*=\s*"([^"]*)"/.exec(rest)?.[1]?.trim() ?? '';
  const codes = rest
    .replace(/reason\s*=\s*"[^"]*"/, '')
    .split(/[\s,]+/)
    .filter((code) => code !== '');
  return { line, codes, reason };
}
