/**
 * Where a large SQL text may be cut into pieces that PostgreSQL's parser can take
 * one at a time: after a `;` outside quotes, comments and parentheses. The parser
 * copes badly with one huge text (its output for a 50 MB data migration does not
 * fit in memory), so big files are parsed piece by piece.
 *
 * This is only a performance device, never the judge of the syntax: every piece is
 * parsed by the real parser, and a cut it gets wrong (a `;` inside a `BEGIN ATOMIC`
 * body, say) makes a piece fail, which the caller then parses joined to the next.
 */
export function cutPoints(sql: string, targetLength: number): number[] {
  const cuts: number[] = [];
  let last = 0;
  scanSql(sql, {
    statementEnd(i) {
      if (i + 1 - last < targetLength) return;
      cuts.push(i + 1);
      last = i + 1;
    },
  });
  return cuts;
}

/**
 * The `--` comments of a SQL text, with their line (1-based): only real comments,
 * never text that looks like one inside a string, a quoted identifier or a
 * dollar-quoted body. Directives are read from these.
 */
export function lineComments(sql: string): { line: number; text: string }[] {
  const found: { line: number; text: string }[] = [];
  let line = 1;
  let counted = 0;
  scanSql(sql, {
    lineComment(start, end) {
      for (let j = sql.indexOf('\n', counted); j !== -1 && j < start; j = sql.indexOf('\n', j + 1)) line++;
      counted = start;
      found.push({ line, text: sql.slice(start, end) });
    },
  });
  return found;
}

/**
 * Walks SQL text as PostgreSQL's lexer sees its quoting: strings (with `E''`
 * escapes), quoted identifiers, `--` and nested block comments, dollar-quoted
 * bodies. Calls back for each `--` comment (its text, without the newline) and for
 * each `;` outside all of them and outside parentheses.
 */
function scanSql(sql: string, on: { statementEnd?(index: number): void; lineComment?(start: number, end: number): void }): void {
  let depth = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 39 /* ' */) {
      // E'…' strings take backslash escapes; others only doubled quotes.
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !isWordChar(sql.charCodeAt(i - 2));
      i = skipQuoted(sql, i + 1, 39, escapes);
    } else if (c === 34 /* " */) {
      i = skipQuoted(sql, i + 1, 34, false);
    } else if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      on.lineComment?.(i, stop);
      i = stop;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42) {
      i = skipBlockComment(sql, i + 2);
    } else if (c === 36 /* $ */ && !isWordChar(sql.charCodeAt(i - 1))) {
      i = skipDollarQuoted(sql, i);
    } else {
      if (c === 40) depth++;
      else if (c === 41) depth = Math.max(0, depth - 1);
      else if (c === 59 /* ; */ && depth === 0) on.statementEnd?.(i);
      i++;
    }
  }
}

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c > 127;
}

function skipQuoted(sql: string, from: number, quote: number, backslashEscapes: boolean): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslashEscapes && c === 92) i += 2;
    else if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length;
}

/** The index after a block comment (nested ones included) whose `/*` ends at `from`. */
export function skipBlockComment(sql: string, from: number): number {
  let depth = 1;
  let i = from;
  while (i < sql.length && depth > 0) {
    if (sql.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (sql.startsWith('*/', i)) {
      depth--;
      i += 2;
    } else i++;
  }
  return i;
}

/** `$tag$ … $tag$` (a `$1` parameter is not a quote). */
function skipDollarQuoted(sql: string, start: number): number {
  const tag = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(sql.slice(start, start + 70));
  if (!tag) return start + 1;
  const end = sql.indexOf(tag[0], start + tag[0].length);
  return end === -1 ? sql.length : end + tag[0].length;
}
