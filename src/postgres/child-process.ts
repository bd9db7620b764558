import type { ChildProcess, StdioOptions } from 'node:child_process';
import { spawn } from 'node:child_process';

/**
 * A tiny Node process between Flotilla and a child tool: it starts the tool in a
 * process group of its own, and kills that group as soon as its standard input,
 * a pipe from Flotilla, closes. The kernel closes that pipe when Flotilla dies,
 * even by SIGKILL, so no pg_dump or canary check outlives the command that
 * started it (what PR_SET_PDEATHSIG gives on Linux, on every platform).
 */
const GUARD = `
const { spawn } = require('node:child_process');
const [command, ...args] = process.argv.slice(1);
const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
const killAll = (signal) => { try { process.kill(-child.pid, signal); } catch {} };
child.on('error', (error) => { process.stderr.write(String(error.message) + '\\n'); process.exit(127); });
child.on('exit', (code, signal) => process.exit(code ?? 128 + (require('node:os').constants.signals[signal] ?? 1)));
process.stdin.on('end', () => { killAll('SIGKILL'); process.exit(137); });
process.stdin.on('error', () => { killAll('SIGKILL'); process.exit(137); });
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => killAll(signal));
`;

export interface GuardedOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** What becomes of the tool's standard output and error (standard input is always closed). */
  readonly stdout?: 'pipe' | 'ignore' | number;
  readonly stderr?: 'pipe' | 'ignore' | number;
}

/** Spawns `command` so that it dies with this process, whatever kills it. */
export function spawnGuarded(command: string, args: readonly string[], options: GuardedOptions = {}): ChildProcess {
  const stdio: StdioOptions = ['pipe', options.stdout ?? 'ignore', options.stderr ?? 'pipe'];
  const child = spawn(process.execPath, ['-e', GUARD, '--', command, ...args], { env: options.env ?? process.env, stdio });
  // The pipe is the lifeline: nothing is written to it, and it must not keep this process alive.
  child.stdin?.on('error', () => undefined);
  return child;
}
