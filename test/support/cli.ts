import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `flotilla` executable in a directory, as a user would. */
export function runCli(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  return runProcess(process.execPath, [BIN, ...args], options);
}

/** Runs a command to its end, with what it printed and its exit code. */
export function runProcess(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The JSON events `migrate` prints one per line (not on a terminal, or with --json). */
// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON the tests read by name.
export function events(stdout: string): Record<string, any>[] {
  return (
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      // biome-ignore lint/suspicious/noExplicitAny: as above.
      .map((line) => JSON.parse(line) as Record<string, any>)
  );
}

/** What happened to each tenant in a rollout's events: succeeded, failed (with its code) or skipped. */
export function tenantResults(stdout: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const e of events(stdout)) {
    if (e.event === 'tenant.succeeded') result[e.tenant] = 'succeeded';
    if (e.event === 'tenant.skipped') result[e.tenant] = 'skipped';
    if (e.event === 'tenant.failed') result[e.tenant] = `failed:${e.code}`;
  }
  return result;
}
