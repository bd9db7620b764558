import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULES } from '../../src/core/lint/codes.js';
import { events } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';
import { README, REPO, readmeExample } from '../support/readme.js';

let project: TestProject;
/**
 * The examples run as a user runs them on a fresh machine: no database URL, so
 * every command starts the project's own embedded PostgreSQL (in .flotilla/),
 * with the default tenant names, isolated from the other tests' server.
 */
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  project = await testProject();
  const fs = await import('node:fs/promises');
  await fs.rm(join(project.dir, 'flotilla.config.json'));
  await fs.rm(project.migrationsDir, { recursive: true });
  // As root, the embedded server runs as the `postgres` user, which must be able to enter the directory.
  await fs.chmod(project.dir, 0o755);
  env = { ...process.env, FLOTILLA_DATABASE_URL: '', FLOTILLA_MIGRATIONS_DIR: '' };
});
afterAll(() => project?.cleanup());

describe('the README reference', () => {
  it('lists exactly the lint codes Flotilla uses, with their severity and family', () => {
    const table = /<!-- lint-codes -->\n([\s\S]*?)\n<!-- \/lint-codes -->/.exec(README)![1]!;
    const rows = table
      .split('\n')
      .slice(2)
      .map((row) =>
        row
          .split('|')
          .map((cell) => cell.trim())
          .filter(Boolean),
      );
    expect(rows.map(([code, severity, family]) => [code!.replaceAll('`', ''), severity, family])).toEqual(
      Object.entries(RULES).map(([code, rule]) => [code, rule.severity, rule.family]),
    );
  });
});

describe('the README examples', () => {
  it('runs the command-line example as written', () => {
    // `npx flotilla` is this checkout's executable; everything else runs as written.
    const script = `set -euo pipefail\nnpx() { shift; node ${JSON.stringify(join(REPO, 'bin/flotilla.js'))} "$@"; }\n${readmeExample('cli')}`;
    const run = spawnSync('bash', ['-c', script], { cwd: project.dir, env, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // The dry run, grouped: the two tenants differ (globex's statement is rewritten for its schema).
    expect(run.stdout).toMatch(/1 tenant \(acme\):\n {2}✓ each: would apply 1 migration .*1 outside the transaction/);
    expect(run.stdout).toMatch(/1 tenant \(globex\):\n {2}✓ each: would apply 1 migration .*1 statement rewritten for the tenant schema; 1 outside the transaction/);
    // The rollout's events (not on a terminal): one per line.
    const done = Object.fromEntries(
      events(run.stdout)
        .filter((e) => e.event === 'tenant.succeeded')
        .map((e) => [e.tenant, e.details]),
    );
    expect(done).toEqual({
      acme: expect.objectContaining({ rewritten: 0, outsideTransaction: 1 }),
      globex: expect.objectContaining({ rewritten: 1, outsideTransaction: 1 }),
    });
    const tenants = JSON.parse(run.stdout.slice(run.stdout.lastIndexOf('\n[')));
    expect(tenants.map((t: { slug: string; status: string }) => [t.slug, t.status])).toEqual([
      ['acme', 'active'],
      ['globex', 'active'],
    ]);
  });

  it('runs the library example as written', () => {
    const code = readmeExample('library').replace(`from 'flotilla'`, `from ${JSON.stringify(join(REPO, 'src/index.ts'))}`);
    // An ES module project, as the example's top-level await needs.
    writeFileSync(join(project.dir, 'package.json'), JSON.stringify({ name: 'readme-example', type: 'module', private: true }));
    writeFileSync(join(project.dir, 'example.ts'), code);
    const run = spawnSync(process.execPath, [join(REPO, 'node_modules/tsx/dist/cli.mjs'), 'example.ts'], { cwd: project.dir, env, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout.split('\n')).toEqual(expect.arrayContaining(['acme skipped', 'globex skipped', 'initech skipped', 'initech 0002 0']));
  });
});
