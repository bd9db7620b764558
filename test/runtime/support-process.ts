import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RuntimeOptions } from '../../src/runtime/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = fileURLToPath(new URL('./app-server.ts', import.meta.url));

/** The app (app-server.ts) running in a process of its own. */
export interface AppProcess {
  readonly port: number;
  readonly pid: number;
  /** Ends the process (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts the app on a project's control database; resolves once it listens. */
export function startApp(databaseUrl: string, options: Omit<RuntimeOptions, 'databaseUrl'> = {}): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', APP], {
    cwd: ROOT,
    env: { ...process.env, FLOTILLA_DATABASE_URL: databaseUrl, FLOTILLA_TEST_RUNTIME: JSON.stringify(options) },
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`The app exited (${code}) before listening: ${stderr}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve({ port: (JSON.parse(line) as { port: number }).port, pid: child.pid!, stop: () => stop(child) });
    });
  });
}

function stop(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
