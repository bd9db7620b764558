import { loadModule as loadScanner, scanSync } from '@libpg-query/parser';
import { deparseSync, loadModule as loadParser, parseSync } from 'pgsql-parser';
import { FlotillaError } from '../errors.js';
import type { AstNode } from './ast.js';
import { nodeType } from './ast.js';

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

/** Line and column (1-based) of a UTF-8 byte offset; the parser reports bytes. */
export function positionAt(bytes: Buffer, byteOffset: number): SourcePosition {
  const before = bytes.subarray(0, Math.max(0, Math.min(byteOffset, bytes.length))).toString('utf8');
  const lastNewline = before.lastIndexOf('\n');
  let line = 1;
  for (let i = 0; i < before.length; i++) if (before.charCodeAt(i) === 10) line++;
  return { line, column: before.length - lastNewline };
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
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text.startsWith('/*', i)) (depth++, (i += 2));
        else if (text.startsWith('*/', i)) (depth--, (i += 2));
        else i++;
      }
    } else {
      return i;
    }
  }
}

/** Splits a file into statements with PostgreSQL's own parser; a syntax error names file, line and column. */
export function splitStatements(sql: string, file: string): RawStatement[] {
  const bytes = Buffer.from(sql, 'utf8');
  let tree: { stmts?: { stmt: AstNode; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = parseSync(sql);
  } catch (cause) {
    const details = (cause as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
    const at = positionAt(bytes, details?.cursorPosition ?? 0);
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new FlotillaError('FLO_SQL_SYNTAX', `${file}:${at.line}:${at.column}: ${reason}`, {
      hint: 'Fix the SQL at that line; Flotilla parses every file with the PostgreSQL parser before touching any database.',
      meta: { file, line: at.line, column: at.column, reason },
      cause,
    });
  }
  return (tree.stmts ?? []).map((raw) => {
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    const slice = bytes.subarray(start, end).toString('utf8');
    const skip = leadingTrivia(slice);
    const at = positionAt(bytes, start + Buffer.byteLength(slice.slice(0, skip), 'utf8'));
    return { node: raw.stmt, kind: nodeType(raw.stmt), sql: slice.slice(skip).trimEnd(), line: at.line, column: at.column };
  });
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
