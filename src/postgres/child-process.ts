import type { ChildProcess, StdioOptions } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';

/**
 * Child tools die with the command that started them, even when it is killed
 * with SIGKILL, so that no pg_dump goes on writing on its own:
 *
 * - on Linux, a tool is started through `setpriv --pdeathsig KILL`: the kernel
 *   kills it when its parent dies (PR_SET_PDEATHSIG);
 * - elsewhere, or for a command that starts processes of its own (a canary
 *   check's shell), through a tiny Node process that starts it in a process
 *   group of its own and kills that group when its standard input, a pipe from
 *   Flotilla, closes, which the kernel does when Flotilla dies.
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
  /** The command starts processes of its own, which must die too: guard its whole process group. */
  readonly group?: boolean;
  /** Use the Node guard even where setpriv is there (tests of the guard). */
  readonly portable?: boolean;
}

let setprivWorks: boolean | undefined;

function hasSetpriv(): boolean {
  setprivWorks ??= process.platform === 'linux' && spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status === 0;
  return setprivWorks;
}

/** Spawns `command` so that it dies with this process, whatever kills it. */
export function spawnGuarded(command: string, args: readonly string[], options: GuardedOptions = {}): ChildProcess {
  const stdout = options.stdout ?? 'ignore';
  const stderr = options.stderr ?? 'pipe';
  if (!options.group && !options.portable && hasSetpriv()) {
    return spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], { env: options.env ?? process.env, stdio: ['ignore', stdout, stderr] });
  }
  const stdio: StdioOptions = ['pipe', stdout, stderr];
  const child = spawn(process.execPath, ['-e', GUARD, '--', command, ...args], { env: options.env ?? process.env, stdio });
  // The pipe is the lifeline: nothing is written to it.
  child.stdin?.on('error', () => undefined);
  return child;
}
