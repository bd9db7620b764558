import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

const USER_SCRIPT = fileURLToPath(new URL('../support/embedded-user.ts', import.meta.url));

/** A process using the embedded server, and what it prints, line by line. */
class User {
  readonly child: ChildProcessWithoutNullStreams;
  private output = '';
  readonly exited: Promise<number | null>;

  constructor(dataDir: string) {
    this.child = spawn(process.execPath, ['--import', 'tsx', USER_SCRIPT, dataDir], { env: process.env });
    this.child.stdout.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  async says(line: RegExp): Promise<void> {
    for (let i = 0; i < 600 && !line.test(this.output); i++) await new Promise((r) => setTimeout(r, 100));
    expect(this.output).toMatch(line);
  }

  tell(command: string): void {
    this.child.stdin.write(`${command}\n`);
  }
}

let dir: string;
const users: User[] = [];

async function serverRunning(dataDir: string): Promise<boolean> {
  const pid = await readFile(join(dataDir, 'postmaster.pid'), 'utf8')
    .then((t) => Number(t.split('\n')[0]))
    .catch(() => undefined);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(condition: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-shared-embedded-'));
  // As root the server runs as the `postgres` user, which must be able to enter the directory.
  await chmod(dir, 0o755);
});
afterAll(async () => {
  for (const user of users) user.child.kill('SIGKILL');
  const pid = await readFile(join(dir, 'pg', 'postmaster.pid'), 'utf8')
    .then((t) => Number(t.split('\n')[0]))
    .catch(() => undefined);
  if (pid) process.kill(pid, 'SIGINT');
  await until(async () => !(await serverRunning(join(dir, 'pg'))));
  await rm(dir, { recursive: true, force: true });
});

describe('the embedded server shared by several processes', () => {
  it('keeps running while any process uses it, whichever started it, and stops with the last one', async () => {
    const dataDir = join(dir, 'pg');
    const first = new User(dataDir);
    users.push(first);
    await first.says(/ready/);
    const second = new User(dataDir);
    users.push(second);
    await second.says(/ready/);

    // The process that started the server lets go first: the server stays for the other, and the first ends by itself.
    first.tell('release');
    expect(await first.exited).toBe(0);
    expect(await serverRunning(dataDir)).toBe(true);
    second.tell('query');
    await second.says(/ok 1/);

    // A command run meanwhile (its own config: the embedded server of that directory) joins and leaves it running.
    await mkdir(join(dir, 'migrations'));
    await writeFile(join(dir, 'flotilla.config.json'), JSON.stringify({ migrationsDir: 'migrations', embedded: { dataDir: 'pg' } }));
    const env = { ...process.env, FLOTILLA_DATABASE_URL: '' };
    const status = await runCli(['status', '--json'], { cwd: dir, env });
    expect(status.stderr).toBe('');
    expect(JSON.parse(status.stdout)).toEqual([]);
    expect(await serverRunning(dataDir)).toBe(true);

    // The last user stops it.
    second.tell('release');
    expect(await second.exited).toBe(0);
    expect(await until(async () => !(await serverRunning(dataDir)))).toBe(true);
    expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
  });
});
