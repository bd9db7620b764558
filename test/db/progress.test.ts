import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
/** util-linux `script` gives the command a real terminal. */
const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) console.log('[flotilla tests] `script` (util-linux) is not installed: the terminal display test is skipped.');

let project: TestProject;

beforeAll(async () => {
  project = await testProject();
  await project.write({ '0001_a.sql': 'CREATE TABLE a (id int);' });
  const flotilla = await Flotilla.open({ config: project.config });
  for (const slug of ['p1', 'p2', 'p3']) await flotilla.tenants.create({ slug, kind: 'schema' });
  await flotilla.close();
  await project.write({ '0002_b.sql': 'ALTER TABLE a ADD COLUMN b int;', '0003_bad.sql': 'SELECT 1;' });
});
afterAll(() => project?.cleanup());

describe.skipIf(!hasScript)('migrate on a terminal', () => {
  it('shows a live progress line, then a summary table with the rollout id', () => {
    const run = spawnSync('script', ['-qec', `${process.execPath} ${BIN} migrate --all`, '/dev/null'], {
      cwd: project.dir,
      env: { ...project.env, COLUMNS: '200' },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escapes are what it strips.
    const screen = run.stdout.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
    expect(screen).toMatch(/Rollout [0-9a-f-]{36}: 3 tenants to upgrade, 0 already at the target\./);
    expect(screen).toMatch(/3\/3 \| 3 done, 0 failed, 0 running, 0 pending \| [\d.]+\/s \| ETA/);
    expect(screen).toMatch(/│ [0-9a-f-]{36} │ finished │ 3 +│ 0 +│ 0 +│ 0 +│/);
    expect(screen).not.toContain('"event"');
  });
});
