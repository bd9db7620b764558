import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { withClient } from '../../src/postgres/connect.js';
import { serverUrl } from './project.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));

/** Polls a condition until it holds (never a fixed sleep); fails after `timeoutMs`. */
export async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A `flotilla` process to be killed with SIGKILL at a chosen moment. */
export interface Victim {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** SIGKILL; with `withSessions`, its database sessions are ended too, as when its machine goes down. */
  kill(options?: { withSessions?: boolean }): Promise<void>;
}

export function startCli(args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Victim {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => output,
    async kill(killOptions = {}) {
      child.kill('SIGKILL');
      await exited;
      if (killOptions.withSessions) {
        await withClient(serverUrl(), 'postgres', (admin) =>
          admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE '%' || $1 || '%'`, [`:${child.pid}:`]),
        );
      }
    },
  };
}

/** Processes (other than this one) whose command line mentions `marker`: what a killed command left running. */
export async function processesMentioning(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.replaceAll('\0', ' ').slice(0, 200)}`);
  }
  return found;
}
