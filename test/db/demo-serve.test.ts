import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
/** The line a user waits for, and the three URLs printed under it. */
const SERVING = /Serving the loans app on http:\/\/127\.0\.0\.1:(\d+) [\s\S]*\?tenant=nice\n/;

let dir: string;
let demo: ChildProcessWithoutNullStreams | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-demo-serve-'));
  // As root the embedded server runs as the `postgres` user, which must be able to enter the directory.
  await chmod(dir, 0o755);
});
afterAll(async () => {
  // A failed test leaves nothing running: the demo stops its embedded server on SIGTERM.
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    const exited = new Promise((resolve) => demo!.once('exit', resolve));
    demo.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

/** `npx flotilla demo --serve` as on a fresh machine: no database URL, so on its own embedded PostgreSQL. */
describe('flotilla demo --serve', () => {
  const env = { ...process.env, FLOTILLA_DATABASE_URL: '', FLOTILLA_MIGRATIONS_DIR: '' };

  it('serves each tenant its own summary, by subdomain, header or query, until SIGTERM', { timeout: 240_000 }, async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--serve', '--port', '0'], { cwd: dir, env });
    demo = child;
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const serving = SERVING.exec(stdout);
        if (serving) resolve(Number(serving[1]));
      });
      void exited.then((code) => reject(new Error(`the demo exited with ${code} before serving:\n${stdout}\n${stderr}`)));
    });
    expect(stdout).toContain('Status after the upgrade:');
    expect(stdout).toContain(`http://paris.localhost:${port}/summary`);
    expect(stdout).toContain(`curl -H 'X-Tenant-ID: lyon' http://127.0.0.1:${port}/summary`);
    expect(stdout).toContain(`http://127.0.0.1:${port}/summary?tenant=nice`);
    const postgres = Number((await readFile(join(dir, '.flotilla', 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);

    const byHost = await get(port, '/summary', { host: `paris.localhost:${port}` });
    expect(byHost).toEqual({ status: 200, body: { tenant: 'paris', members: 12, loans: 24, payments: 72 } });
    expect(Object.keys(byHost.body as object)).toEqual(['tenant', 'members', 'loans', 'payments']);
    expect(await get(port, '/summary', { 'x-tenant-id': 'lyon' })).toEqual({ status: 200, body: { tenant: 'lyon', members: 7, loans: 7, payments: 28 } });
    expect(await get(port, '/summary?tenant=nice')).toEqual({ status: 200, body: { tenant: 'nice', members: 9, loans: 27, payments: 54 } });

    // Each tenant's own rows, from its own database or schema.
    const members = await get(port, '/members', { 'x-tenant-id': 'nice' });
    expect(members.status).toBe(200);
    const emails = (members.body as { members: { email: string }[] }).members.map((m) => m.email);
    expect(emails).toHaveLength(9);
    expect(emails.every((email) => email.startsWith('nice-'))).toBe(true);

    expect(await get(port, '/summary?tenant=rome')).toMatchObject({ status: 404, body: { error: { code: 'FLO_TENANT_NOT_FOUND', tenant: 'rome' } } });
    expect(await get(port, '/summary')).toMatchObject({ status: 400, body: { error: { code: 'FLO_TENANT_UNRESOLVED' } } });

    const stopping = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(30_000);
    expect(stderr).toBe('');
    expect(stdout).toContain('SIGTERM: stopping.');
    // Nothing left running: the port is free, and the embedded server this demo started has stopped.
    await expect(get(port, '/summary?tenant=nice')).rejects.toThrow(/ECONNREFUSED/);
    expect(alive(postgres)).toBe(false);
    expect(existsSync(join(dir, '.flotilla', 'postgres', 'postmaster.pid'))).toBe(false);
  });

  it('refuses a port it cannot use, before running the demo', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const cwd = await mkdtemp(join(tmpdir(), 'flotilla-demo-port-'));
    try {
      const result = await runCli(['demo', '--serve', '--port', String(port)], { cwd, env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`error FLO_USAGE: Port ${port} on 127.0.0.1 cannot be used (EADDRINUSE).`);
      expect(existsSync(join(cwd, '.flotilla'))).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it.each([
    [['demo', '--serve', '--port', '65536'], '--port "65536" is not at most 65535'],
    [['demo', '--serve', '--port', 'http'], '--port "http" is not a whole number from 0 to 65535'],
    [['demo', '--port', '8080'], '--port is for --serve'],
    [['demo', '--serve', '--json'], '--json and --serve do not go together'],
  ])('refuses %j with a usage error', async (args, message) => {
    const result = await runCli(args, { cwd: dir, env });
    expect(result.code).toBe(2);
    expect(result.stderr + result.stdout).toContain(message);
  });
});

/** One GET on 127.0.0.1, with headers fetch cannot set (Host); the body parsed as JSON. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user (the embedded server runs as `postgres` under root).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
