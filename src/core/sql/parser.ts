import { loadModule as loadScanner, scanSync } from '@libpg-query/parser';
import { deparseSync, loadModule as loadParser, parseSync } from 'pgsql-parser';
import { FlotillaError } from '../errors.js';
import type { AstNode } from './ast.js';
import { nodeType } from './ast.js';
import { cutPoints, skipBlockComment } from './chunks.js';

let loading: Promise<void> | undefined;

/** Loads PostgreSQL's parser (WASM) once per process; every parse function needs it. */
export function loadSqlParser(): Promise<void> {
  loading ??= Promise.all([loadParser(), loadScanner()]).then(() => undefined);
  return loading;
}

/** One statement exactly as the parser split it, with where it starts in its file. */
export interface RawStatement {
  readonly node: AstNode;
  readonly kind: string;
  /** The statement's own text, without leading comments or the trailing `;`. */
  readonly sql: string;
  readonly line: number;
  readonly column: number;
}

export interface SourcePosition {
  line: number;
  column: number;
}

/**
 * Line and column (1-based) of UTF-8 byte offsets in one text; the parser reports
 * bytes. The line starts are found once, so each lookup is a binary search: a file
 * with many statements is positioned in linear time, not quadratic.
 */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(private readonly bytes: Buffer) {
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) this.starts.push(i + 1);
  }

  positionAt(byteOffset: number): SourcePosition {
    const offset = Math.max(0, Math.min(byteOffset, this.bytes.length));
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid]! <= offset) low = mid;
      else high = mid - 1;
    }
    // Columns count characters, not bytes.
    const column = this.bytes.subarray(this.starts[low]!, offset).toString('utf8').length + 1;
    return { line: low + 1, column };
  }
}

/** Length of leading white space and comments (`--`, nested `/* *\/`) in a statement slice. */
function leadingTrivia(text: string): number {
  let i = 0;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text.startsWith('--', i)) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end + 1;
    } else if (text.startsWith('/*', i)) {
      i = skipBlockComment(text, i + 2);
    } else {
      return i;
    }
  }
}

interface ParsedStatement {
  readonly stmt: AstNode;
  /** Byte offsets in the whole file. */
  readonly start: number;
  readonly end: number;
}

/** Texts longer than this are parsed piece by piece (see chunks.ts). */
const PIECE_CHARS = 1 << 20;

/** Splits a file into statements with PostgreSQL's own parser; a syntax error names file, line and column. */
export function splitStatements(sql: string, file: string): RawStatement[] {
  return [...eachStatement(sql, file)];
}

/**
 * The same, one statement at a time, parsing the file piece by piece: a caller
 * that keeps only what it needs of each tree lets the rest go as it reads.
 */
export function* eachStatement(sql: string, file: string): Generator<RawStatement> {
  const bytes = Buffer.from(sql, 'utf8');
  const lines = new LineIndex(bytes);
  try {
    for (const { stmt, start, end } of parsePieces(sql)) {
      const slice = bytes.subarray(start, end).toString('utf8');
      const skip = leadingTrivia(slice);
      const at = lines.positionAt(start + Buffer.byteLength(slice.slice(0, skip), 'utf8'));
      yield { node: stmt, kind: nodeType(stmt), sql: slice.slice(skip).trimEnd(), line: at.line, column: at.column };
    }
  } catch (failure) {
    if (!isParseFailure(failure)) throw failure;
    const at = lines.positionAt(failure.at);
    const reason = failure.cause instanceof Error ? failure.cause.message : String(failure.cause);
    throw new FlotillaError('FLO_SQL_SYNTAX', `${file}:${at.line}:${at.column}: ${reason}`, {
      hint: 'Fix the SQL at that line; Flotilla parses every file with the PostgreSQL parser before touching any database.',
      meta: { file, line: at.line, column: at.column, reason },
      cause: failure.cause,
    });
  }
}

/** The tree of one statement's text, parsed again (for statements whose tree is let go after reading). */
export function parseOne(sql: string): AstNode {
  const stmt = (parseSync(sql) as { stmts?: { stmt: AstNode }[] }).stmts?.[0]?.stmt;
  if (!stmt) throw new FlotillaError('FLO_INTERNAL', `The statement no longer parses: ${sql.slice(0, 80)}`);
  return stmt;
}

class ParseFailure {
  constructor(
    readonly cause: unknown,
    /** Byte offset in the whole text. */
    readonly at: number,
  ) {}
}

function isParseFailure(value: unknown): value is ParseFailure {
  return value instanceof ParseFailure;
}

/**
 * The statements of a text, parsed in pieces cut after top-level semicolons. A
 * piece that fails is parsed again joined to the next one: when the error stays
 * where it was, it is the text's own; when it moves, the cut was wrong.
 */
function* parsePieces(sql: string): Generator<ParsedStatement> {
  const bounds = [0, ...(sql.length > PIECE_CHARS ? cutPoints(sql, PIECE_CHARS) : []), sql.length];
  if (bounds[bounds.length - 2] === sql.length) bounds.pop();
  const byteAt = [0];
  for (let k = 1; k < bounds.length; k++) byteAt.push(byteAt[k - 1]! + Buffer.byteLength(sql.slice(bounds[k - 1], bounds[k]), 'utf8'));
  const last = bounds.length - 1;
  for (let i = 0; i < last; ) {
    let previousError: number | undefined;
    // A failing piece is joined to the next one, then to the next two, four…: a cut inside a long
    // statement (a BEGIN ATOMIC body, an unterminated one) costs a few parses, not one per piece.
    for (let step = 1; ; step *= 2) {
      const j = Math.min(i + step, last);
      const text = sql.slice(bounds[i], bounds[j]);
      // White space after the last cut is no statement (the parser refuses an empty text).
      if (last > 1 && text.trim() === '') {
        i = j;
        break;
      }
      try {
        const tree = parseSync(text) as { stmts?: { stmt: AstNode; stmt_location?: number; stmt_len?: number }[] };
        const from = i;
        i = j;
        for (const raw of tree.stmts ?? []) {
          const start = byteAt[from]! + (raw.stmt_location ?? 0);
          yield { stmt: raw.stmt, start, end: raw.stmt_len ? start + raw.stmt_len : byteAt[j]! };
        }
        break;
      } catch (cause) {
        // The parser reports its cursor in characters; positions here are bytes.
        const cursor = (cause as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition ?? 0;
        const at = byteAt[i]! + Buffer.byteLength(text.slice(0, cursor), 'utf8');
        if (j === last || at === previousError) throw new ParseFailure(cause, at);
        previousError = at;
      }
    }
  }
}

export function deparseStatement(node: AstNode): string {
  // The deparser's own node types are narrower than our JSON view of the same tree.
  return deparseSync([{ RawStmt: { stmt: node } }] as unknown as Parameters<typeof deparseSync>[0]);
}

export interface SqlToken {
  start: number;
  end: number;
  text: string;
  tokenName: string;
}

/** PostgreSQL's lexer over a text (for PL/pgSQL bodies, which the SQL tree keeps as opaque strings). */
export function scanTokens(text: string): SqlToken[] {
  return (scanSync(text) as { tokens: SqlToken[] }).tokens;
}
