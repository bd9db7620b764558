import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { assertSlug, derivedName } from '../../src/core/slug.js';
import { tenantSchemaMap } from '../../src/core/sql/schema-rewrite.js';

describe('slugs', () => {
  it.each(['Paris', 'a;drop', 'x', 'a'.repeat(60), '1abc', 'acme_paris', '', 'ab--cd', 'ab-', '-ab', 'a--', 'ab.cd', 'ab%2e', '..'])('refuses %j', (slug) => {
    expect(() => assertSlug(slug)).toThrow(expect.objectContaining({ code: 'FLO_SLUG_INVALID' }));
  });

  it.each(['paris', 'acme-paris', 'a1', 'a'.repeat(41)])('accepts %j', (slug) => {
    expect(() => assertSlug(slug)).not.toThrow();
  });

  it('derives names with "_" in place of "-"', () => {
    expect(derivedName('tenant_', 'acme-paris')).toBe('tenant_acme_paris');
  });

  it('refuses a name over 63 bytes before any SQL, saying how long a slug may be', () => {
    const prefix = 'p'.repeat(40);
    expect(derivedName(prefix, 'a'.repeat(23))).toHaveLength(63);
    expect(() => derivedName(prefix, 'a'.repeat(24))).toThrow(expect.objectContaining({ code: 'FLO_SLUG_INVALID', meta: expect.objectContaining({ maxSlugLength: 23 }) }));
  });

  it('never gives two tenants one name, nor one tenant a name another one extends: generated candidates', () => {
    // Slugs built from the characters that made names collide before: letters, digits, "-" and "_".
    // Every string of 2 to 6 of these characters (5 + 25 + … + 15,625 candidates), plus the historical ones.
    const alphabet = ['a', 'b', '1', '-', '_'];
    const candidates = new Set(['ab-cd', 'ab--cd', 'ab-cd-', 'ab-events', 'ab--events', 'x'.repeat(41), 'x'.repeat(42)]);
    let layer = [''];
    for (let length = 1; length <= 6; length++) {
      layer = layer.flatMap((s) => alphabet.map((c) => s + c));
      if (length >= 2) for (const s of layer) candidates.add(s);
    }
    const created = ['events', 'cd', 'x__y', '_z', 'e'.repeat(60)];
    const owner = new Map<string, string>();
    let accepted = 0;
    for (const prefix of ['tenant_', 't__', 'p'.repeat(40)]) {
      owner.clear();
      for (const slug of candidates) {
        try {
          assertSlug(slug);
        } catch {
          continue;
        }
        let names: string[];
        try {
          const schema = derivedName(prefix, slug);
          names = [...new Set([derivedName(prefix, slug), ...tenantSchemaMap(schema, created).values()])];
        } catch (error) {
          expect(error).toMatchObject({ code: 'FLO_SLUG_INVALID' });
          continue;
        }
        accepted++;
        for (const name of names) {
          expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
          expect(owner.get(name) ?? slug, `${name} of ${slug}`).toBe(slug);
          owner.set(name, slug);
        }
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});

describe('configuration', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-config-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('uses defaults without a config file', async () => {
    const config = await loadConfig({ cwd: dir, env: {} });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.migrationsDir).toBe(join(dir, 'migrations'));
    expect(config.tenants).toMatchObject({ defaultKind: 'database', databasePrefix: 'tenant_', schemaDatabase: 'flotilla_tenants' });
  });

  it('refuses a name prefix PostgreSQL would cut (70 characters), before any SQL', async () => {
    await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ tenants: { databasePrefix: 't'.repeat(70), schemaDatabase: 's'.repeat(64) } }));
    const error = await loadConfig({ cwd: dir, env: {} }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FLO_CONFIG_INVALID' });
    expect((error as { meta: { problems: string[] } }).meta.problems).toEqual([
      expect.stringMatching(/^tenants.databasePrefix: at most 40 characters/),
      expect.stringMatching(/^tenants.schemaDatabase: at most 63 characters/),
    ]);
  });

  it('reports every problem at once, unknown keys included', async () => {
    await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationDir: 'x', tenants: { defaultKind: 'cluster' }, engine: { lockWaitMs: -1 } }));
    const error = await loadConfig({ cwd: dir, env: {} }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FLO_CONFIG_INVALID' });
    const problems = (error as { meta: { problems: string[] } }).meta.problems;
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toContain('"migrationDir"');
    expect(problems.join('\n')).toContain('tenants.defaultKind');
    expect(problems.join('\n')).toContain('engine.lockWaitMs');
  });

  it('lets the environment win over the file', async () => {
    await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ databaseUrl: 'postgres://file@localhost/a', migrationsDir: 'm' }));
    const config = await loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: 'postgres://env@localhost/b', FLOTILLA_MIGRATIONS_DIR: '/abs/migrations' } });
    expect(config.databaseUrl).toBe('postgres://env@localhost/b');
    expect(config.migrationsDir).toBe('/abs/migrations');
  });

  it.each(['localhost:5432', 'mysql://root@localhost/x', 'postgres://'])('refuses the URL %j', async (url) => {
    await expect(loadConfig({ cwd: dir, env: { FLOTILLA_DATABASE_URL: url } })).rejects.toMatchObject({ code: 'FLO_URL_INVALID' });
  });

  it('reads flotilla.config.ts', async () => {
    await writeFile(join(dir, 'flotilla.config.ts'), `const config: { migrationsDir: string } = { migrationsDir: 'sql' };\nexport default config;\n`);
    const config = await loadConfig({ cwd: dir, env: {} });
    expect(config.migrationsDir).toBe(join(dir, 'sql'));
  });
});
