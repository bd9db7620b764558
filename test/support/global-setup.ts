import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { withClient } from '../../src/postgres/connect.js';
import type { EmbeddedServer } from '../../src/postgres/embedded.js';
import { startEmbedded } from '../../src/postgres/embedded.js';
import { corpusDir } from './corpus.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

let embedded: EmbeddedServer | undefined;
let dataDir: string | undefined;

/**
 * One PostgreSQL server for the whole run: FLOTILLA_TEST_DATABASE_URL when set
 * (CI uses the machine's service), otherwise an embedded server started here.
 */
export async function setup(project: TestProject): Promise<void> {
  // The CLI the tests run is the compiled one (bin/flotilla.js imports dist/): built from these sources first.
  // FLOTILLA_TEST_SKIP_BUILD=1 reuses dist/ as it is (several test runs at once during development).
  if (!process.env.FLOTILLA_TEST_SKIP_BUILD) execFileSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
  let url = process.env.FLOTILLA_TEST_DATABASE_URL;
  if (url) {
    // Fails loudly: a configured server that cannot be reached is an error, not a reason to skip.
    await withClient(url, new URL(url).pathname.slice(1) || 'postgres', async () => undefined);
    console.log(`[flotilla tests] PostgreSQL: FLOTILLA_TEST_DATABASE_URL`);
  } else {
    dataDir = await mkdtemp(join(tmpdir(), 'flotilla-test-'));
    // As root the server runs as the `postgres` user, which must be able to enter the directory.
    await chmod(dataDir, 0o755);
    embedded = await startEmbedded(join(dataDir, 'pg'));
    url = embedded.url;
    console.log('[flotilla tests] PostgreSQL: embedded server (set FLOTILLA_TEST_DATABASE_URL to use another)');
  }
  if (!existsSync(corpusDir())) {
    console.log(
      `[flotilla tests] The trigger.dev corpus is not at ${corpusDir()}: its tests are skipped. Set FLOTILLA_CORPUS_DIR to the corpus's migrations directory to run them.`,
    );
  }
  project.provide('databaseUrl', url);
}

export async function teardown(): Promise<void> {
  await embedded?.release();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
