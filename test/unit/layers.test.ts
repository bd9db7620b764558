import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The dependency rule, checked on the import graph of src/: every import
 * points at the same layer or one below it, and no file reaches itself again
 * through its imports. Type-only imports count too.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Lower layers first; a layer may import its own and those before it. */
const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['postgres'],
  ['config'],
  ['control'],
  ['runtime'],
  ['tenancy'],
  ['engine'],
  ['fleet'],
  ['services'],
  ['flotilla.ts', 'index.ts'],
  ['demo'],
  ['cli'],
];

function layerOf(file: string): number {
  const top = relative(SRC, file).split('/')[0]!;
  const rank = LAYERS.findIndex((names) => names.includes(top));
  if (rank < 0) throw new Error(`${relative(SRC, file)} is in no layer: add its folder to LAYERS.`);
  return rank;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'types' && dir === SRC ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('the import graph of src/', () => {
  it('lists every advisory-lock namespace in one file', () => {
    // A lock key is written as a number only in lock-namespaces.ts; everywhere else it is one of its names.
    const literal = /(NAMESPACE|_LOCK)\s*=\s*\[?\s*(0x)?\d|pg_advisory\w*\(\s*(0x)?\d/;
    const elsewhere = files.filter((f) => !f.endsWith('lock-namespaces.ts') && literal.test(readFileSync(f, 'utf8')));
    expect(elsewhere.map((f) => relative(SRC, f))).toEqual([]);
    expect(readFileSync(join(SRC, 'postgres/lock-namespaces.ts'), 'utf8')).toMatch(/LOCK_NAMESPACES/);
  });

  it('keeps the facade a composition root and every file small', () => {
    const lines = (f: string) => readFileSync(f, 'utf8').split('\n').length;
    expect(lines(join(SRC, 'flotilla.ts'))).toBeLessThanOrEqual(200);
    expect(files.filter((f) => lines(f) > 400).map((f) => relative(SRC, f))).toEqual([]);
  });

  it('branches on the tenant kind only in the tenancy models', () => {
    const branching = files
      .filter((f) => !relative(SRC, f).startsWith('tenancy/'))
      .filter((f) => /\b(tenant|t|backup|leftover|input)\.kind\s*[!=]==\s*'(database|schema)'/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(branching).toEqual([]);
  });

  it('finds the files and their imports', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get(join(SRC, 'flotilla.ts'))!.length).toBeGreaterThan(3);
  });

  it('has no upward import', () => {
    const upward = [...graph].flatMap(([file, imports]) =>
      imports.filter((target) => layerOf(target) > layerOf(file)).map((target) => `${relative(SRC, file)} → ${relative(SRC, target)}`),
    );
    expect(upward).toEqual([]);
  });

  it('has no cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' → '));
        return;
      }
      state.set(file, 'open');
      for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('keeps SQL in the PostgreSQL adapter and the control stores', () => {
    // A query is sent only from postgres/ and control/; the other layers call their helpers. The demo
    // plays the vendor's application, whose own queries (its seed data) it sends; the runtime passes on
    // the application's queries, but writes none of its own (below).
    const outside = files.filter((f) => !['postgres', 'control', 'demo', 'runtime'].includes(relative(SRC, f).split('/')[0]!));
    const sending = outside.filter((f) => /\.query(<[^>]*>)?\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    expect(sending).toEqual([]);
    // Nor is SQL written there: a string that starts as a statement does (comments aside).
    const layers = ['runtime', 'engine', 'fleet', 'services', 'tenancy', 'flotilla.ts', 'cli'];
    const statement = /[`'"]\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|ALTER|DROP|BEGIN|COMMIT|SET|RESET|LOCK)\b/;
    const writing = files
      .filter((f) => layers.includes(relative(SRC, f).split('/')[0]!))
      .filter((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .some((line) => !/^\s*(\*|\/\/)/.test(line) && statement.test(line)),
      )
      .map((f) => relative(SRC, f));
    expect(writing).toEqual([]);
  });
});
