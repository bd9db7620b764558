import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { assertSlug, derivedName } from '../../src/core/slug.js';

describe('slugs', () => {
  it.each(['Paris', 'a;drop', 'x', 'a'.repeat(60), '1abc', 'acme_paris', ''])('refuses %j', (slug) => {
    expect(() => assertSlug(slug)).toThrow(expect.objectContaining({ code: 'FLO_SLUG_INVALID' }));
  });

  it.each(['paris', 'acme-paris', 'a1', 'a'.repeat(41)])('accepts %j', (slug) => {
    expect(() => assertSlug(slug)).not.toThrow();
  });

  it('derives names with "_" in place of "-"', () => {
    expect(derivedName('tenant_', 'acme-paris')).toBe('tenant_acme_paris');
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
