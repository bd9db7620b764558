import { spawnSync } from 'node:child_process';
import { spawnGuarded } from './child-process.js';
import type pg from 'pg';
import { FlotillaError } from '../core/errors.js';
import { splitPassword } from './server-url.js';

/** How to get the client tools of a PostgreSQL major version. */
function installHint(major: number): string {
  return `Install the PostgreSQL ${major} client tools: on Debian/Ubuntu \`apt-get install postgresql-client-${major}\`, on macOS \`brew install postgresql@${major}\`; then make sure the tool is on PATH.`;
}

export async function serverMajor(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Math.floor(Number(rows[0]!.v) / 10000);
}

/** The version a client tool reports (15.20), or null when it is not on PATH. */
export function toolVersion(name: 'pg_dump' | 'pg_restore'): string | null {
  const run = spawnSync(name, ['--version'], { encoding: 'utf8' });
  return run.status === 0 ? (/\d+(\.\d+)*/.exec(run.stdout)?.[0] ?? null) : null;
}

/** The server's version as it reports it (15.19) and its major version (15). */
export async function serverVersion(client: pg.Client): Promise<{ major: number; version: string }> {
  const { rows } = await client.query<{ v: string; n: string }>(`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n`);
  return { major: Math.floor(Number(rows[0]!.n) / 10000), version: rows[0]!.v };
}

/**
 * Checks that a client tool (pg_dump, pg_restore) is on PATH and not older than
 * the server: an older pg_dump refuses to dump a newer server, and a restore
 * needs the matching pg_restore.
 */
export function requireTool(name: 'pg_dump' | 'pg_restore', serverMajorVersion: number): void {
  const run = spawnSync(name, ['--version'], { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    throw new FlotillaError('FLO_TOOL_MISSING', `${name} is not installed (it is not on PATH), so no dump can be ${name === 'pg_dump' ? 'taken' : 'restored'}.`, {
      hint: installHint(serverMajorVersion),
      meta: { tool: name, serverMajor: serverMajorVersion },
    });
  }
  const major = Number(/(\d+)(?:\.\d+)?/.exec(run.stdout)?.[1]);
  if (!(major >= serverMajorVersion)) {
    throw new FlotillaError('FLO_TOOL_MISSING', `${name} ${major} is older than the server (PostgreSQL ${serverMajorVersion}).`, {
      hint: installHint(serverMajorVersion),
      meta: { tool: name, toolMajor: major, serverMajor: serverMajorVersion },
    });
  }
}

/**
 * Runs a client tool with the password in the environment (never on the command
 * line); with no server URL, the tool reads no database (`pg_restore --list`).
 */
export function runTool(name: 'pg_dump' | 'pg_restore', args: readonly string[], serverUrl: string): Promise<{ code: number; stdout: string; stderr: string }> {
  // Neither the user-info password nor a password= parameter goes on a command line (others can read it).
  const { url, password } = serverUrl ? splitPassword(serverUrl) : { url: undefined, password: null };
  return new Promise((resolve, reject) => {
    // The tool dies with this process, so a killed backup leaves no pg_dump writing on its own.
    const child = spawnGuarded(name, [...args, ...(url ? ['--dbname', url] : [])], {
      env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) },
      stdout: 'pipe',
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
