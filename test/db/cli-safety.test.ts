import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events, runCli, tenantResults } from '../support/cli.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

let project: TestProject;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });

beforeAll(async () => {
  project = await testProject();
  await writeFile(
    join(project.dir, 'flotilla.config.json'),
    JSON.stringify({
      migrationsDir: 'migrations',
      tenants: { databasePrefix: `${project.prefix}_`, schemaPrefix: `${project.prefix}_`, schemaDatabase: `${project.prefix}_schemas` },
      backup: { dir: 'backups' },
    }),
  );
  await project.write({ '0001_notes.sql': "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);\nINSERT INTO notes (body) VALUES ('a'), ('b'), ('c');" });
  expect((await cli('migration', 'hash')).code).toBe(0);
  expect((await cli('tenant', 'create', 'acme')).code).toBe(0);
});
afterAll(() => project?.cleanup());

describe('the safety commands of the CLI', () => {
  it('lint exits 1 on an error, 0 once it is allowed with a reason, and prints JSON', async () => {
    await project.write({ '0002_drop.sql': 'ALTER TABLE notes DROP COLUMN body;' });
    await cli('migration', 'hash');
    const failing = await cli('lint');
    expect(failing.code).toBe(1);
    expect(failing.stdout).toContain('0002_drop.sql:1  FD103 error');
    expect(failing.stdout).toContain('instead:');
    const json = JSON.parse((await cli('lint', '--json')).stdout);
    expect(json).toMatchObject({ errors: 1, files: 2, findings: [expect.objectContaining({ code: 'FD103', severity: 'error', file: '0002_drop.sql', line: 1 })] });
    const refused = await cli('migrate', '--all', '--json');
    expect(refused.code).toBe(6);
    expect(tenantResults(refused.stdout)).toEqual({ acme: 'failed:FLO_LINT_REFUSED' });

    await project.write({ '0002_drop.sql': '-- flotilla:allow FD103 reason="body moved to documents"\nALTER TABLE notes DROP COLUMN body;' });
    await cli('migration', 'hash');
    const allowed = await cli('lint');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('(allowed: body moved to documents)');
    const codes = await cli('lint', '--codes', '--json');
    expect(JSON.parse(codes.stdout).map((c: { code: string }) => c.code)).toContain('FN604');
  });

  it('migrates with a backup first, lists it, restores it, and shows it all in the audit trail', async () => {
    const dry = await cli('migrate', '--all', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('would take a backup first (FD103 at 0002_drop.sql:2)');
    expect(dry.stdout).toContain('lint: FD103 ×1');
    const run = await cli('migrate', '--all');
    expect(run.code).toBe(0);
    const succeeded = events(run.stdout).find((e) => e.event === 'tenant.succeeded')!;
    expect(succeeded.backup).toMatch(/^[0-9a-f-]{36}$/);
    expect(succeeded.details.allowedLosses).toEqual(['notes.body: 3 values before, column gone (FV703) — body moved to documents']);
    const list = JSON.parse((await cli('backup', 'list', 'acme', '--json')).stdout);
    expect(list).toHaveLength(1);
    const restored = await cli('restore', 'acme', '--backup', list[0].id.slice(0, 8));
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain('counts checked');
    const manual = await cli('backup', 'acme', '--json');
    expect(JSON.parse(manual.stdout)).toMatchObject({ tenant: 'acme', strategy: 'dump', reason: 'manual' });
    const audit = JSON.parse((await cli('audit', '--tenant', 'acme', '--json')).stdout);
    expect(audit.map((e: { command: string; outcome: string }) => `${e.command}:${e.outcome}`)).toEqual([
      'tenant create:started',
      'tenant create:succeeded',
      'migrate:failed',
      'migrate:planned',
      'migrate:succeeded',
      'restore:started',
      'restore:succeeded',
      'backup:started',
      'backup:succeeded',
    ]);
    expect((await cli('audit', '--since', '1h')).stdout).toContain('restore');
  });

  it('explains bad input to backup, restore and audit', async () => {
    const unknown = await cli('restore', 'acme', '--backup', 'deadbeef');
    expect([unknown.code, unknown.stderr]).toEqual([9, expect.stringContaining('error FLO_BACKUP_NOT_FOUND')]);
    const keep = await cli('backup', 'acme', '--keep', 'zero');
    expect([keep.code, keep.stderr]).toEqual([2, expect.stringContaining('--keep "zero" is not a whole number from 1 to 100000')]);
    const since = await cli('audit', '--since', 'yesterday-ish');
    expect([since.code, since.stderr]).toEqual([2, expect.stringContaining('--since "yesterday-ish" is not a date')]);
    const missing = await cli('backup', 'nobody');
    expect([missing.code, missing.stderr]).toEqual([9, expect.stringContaining('error FLO_TENANT_NOT_FOUND')]);
  });
});
