import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-demo-'));
  await chmod(dir, 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** `npx flotilla demo` as on a fresh machine: no database URL, so on its own embedded PostgreSQL. */
describe('flotilla demo', () => {
  const env = { ...process.env, FLOTILLA_DATABASE_URL: '', FLOTILLA_MIGRATIONS_DIR: '' };

  it.each(['first run (initialises the embedded server)', 'second run (reuses it, resets the demo)'])('completes on the embedded server: %s', async () => {
    const result = await runCli(['demo', '--json'], { cwd: dir, env });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const demo = JSON.parse(result.stdout);
    expect(demo.report).toMatchObject({ succeeded: 3, failed: 0 });
    expect(demo.status.map((s: { slug: string; kind: string; version: string; pending: number }) => [s.slug, s.kind, s.version, s.pending])).toEqual([
      ['lyon', 'database', '0004', 0],
      ['nice', 'schema', '0004', 0],
      ['paris', 'database', '0004', 0],
    ]);
    expect(demo.counts).toHaveLength(9);
    for (const count of demo.counts) {
      expect(count.after).toBe(count.before);
      expect(count.before).toBeGreaterThan(0);
      expect(count.missingClient).toBe(0);
    }
  });

  it('prints a status table and the row counts on a terminal', async () => {
    const result = await runCli(['demo'], { cwd: dir, env });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Status after the upgrade:');
    expect(result.stdout).toMatch(/│ paris +│ members +│ 12 +│ 12 +│ 0 +│/);
  });
});
