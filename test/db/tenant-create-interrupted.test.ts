import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Flotilla } from '../../src/flotilla.js';
import { tenancyModel } from '../../src/tenancy/models.js';
import { runCli } from '../support/cli.js';
import { holdLock, waitingOnLock } from '../support/interrupt.js';
import { claimStorage, insertTenantRow } from '../support/control.js';
import type { TestProject } from '../support/project.js';
import { testProject } from '../support/project.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
let project: TestProject;
let flotilla: Flotilla;
const cli = (...args: string[]) => runCli(args, { cwd: project.dir, env: project.env });

beforeAll(async () => {
  project = await testProject();
  await project.write({
    '0001_notes.sql': "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);\nINSERT INTO notes (body) VALUES ('welcome');",
    // Waits while the test holds this lock: a create is in its migrations for as long as the test says.
    '0002_gate.sql': 'SELECT pg_advisory_xact_lock_shared(424201);',
  });
  expect((await cli('migration', 'hash')).code).toBe(0);
  flotilla = await Flotilla.open({ config: project.config });
  // The shared database of schema tenants, where the tests hold the gate their creates wait on.
  await flotilla.tenants.create({ slug: 'seed', kind: 'schema' });
});
afterAll(async () => {
  await flotilla?.close();
  await project?.cleanup();
});

describe('a tenant create that was interrupted', () => {
  it('refuses a second create of the same slug while the first runs, and the first still finishes', async () => {
    // The first create waits in its migrations until the gate opens: the second comes while it runs, however slow the machine.
    const gate = await holdLock(project.config.tenants.schemaDatabase, 'SELECT pg_advisory_lock(424201)');
    const first = runCli(['tenant', 'create', 'busy', '--kind', 'schema'], { cwd: project.dir, env: project.env });
    await waitingOnLock('%pg_advisory_xact_lock_shared(424201)%', 'the first create waiting in its migrations');
    const second = await cli('tenant', 'create', 'busy', '--kind', 'schema').finally(() => gate.release());
    expect(second.code).toBe(7);
    expect(second.stderr).toContain('error FLO_TENANT_LOCKED: Tenant busy is being created by another process right now.');
    expect((await first).code).toBe(0);
    expect((await flotilla.tenants.get('busy')).status).toBe('active');
  });

  it('is cleared away and created again when the same command runs after the process was killed', async () => {
    const gate = await holdLock(project.config.tenants.schemaDatabase, 'SELECT pg_advisory_lock(424201)');
    const killed = spawn(process.execPath, [BIN, 'tenant', 'create', 'phoenix', '--kind', 'schema'], { cwd: project.dir, env: project.env });
    const exited = new Promise((resolve) => killed.on('close', resolve));
    // Killed while the migrations run: its schema exists, the tenant is registered as provisioning.
    await waitingOnLock('%pg_advisory_xact_lock_shared(424201)%', 'the create waiting in its migrations');
    killed.kill('SIGKILL');
    await exited;
    await gate.release();
    expect((await flotilla.tenants.get('phoenix')).status).toBe('provisioning');

    const again = await cli('tenant', 'create', 'phoenix', '--kind', 'schema');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(await flotilla.tenants.get('phoenix')).toMatchObject({ status: 'active' });
    const notes = await flotilla.tenants.withClient('phoenix', async (c) => (await c.query('SELECT body FROM notes')).rows);
    expect(notes).toEqual([{ body: 'welcome' }]);
    // The killed attempt is on the record: started, then interrupted (closed by the command that cleared it), then the new one.
    const creates = (await flotilla.audit.list({ tenant: 'phoenix' })).filter((e) => e.command === 'tenant create');
    expect(creates.map((e) => e.outcome)).toEqual(['started', 'interrupted', 'started', 'succeeded']);
    expect(creates[1]!.errorMessage).toContain('unfinished tenant phoenix removed');
    expect(creates[0]!.operationId).toBe(creates[1]!.operationId);
  });

  it('clears a schema tenant left half-made the same way', async () => {
    const place = tenancyModel('schema').place('half', project.config.tenants);
    // As an older Flotilla left it: no operation recorded, its storage claimed (as the control database's migration records it).
    const half = await insertTenantRow(flotilla, { slug: 'half', name: 'half', kind: 'schema', server: 'main', ...place, operationId: null });
    await claimStorage(flotilla, { server: 'main', kind: 'schema', database: place.database, name: place.schema }, { purpose: 'tenant', tenantId: half.id });
    await project.query(place.database, `CREATE SCHEMA IF NOT EXISTS "${place.schema}"`).catch(async () => {
      await project.query('postgres', `CREATE DATABASE "${place.database}"`);
      await project.query(place.database, `CREATE SCHEMA "${place.schema}"`);
    });
    await claimStorage(flotilla, { server: 'main', kind: 'database', name: place.database }, { purpose: 'shared' }).catch(() => undefined);
    const again = await cli('tenant', 'create', 'half', '--kind', 'schema');
    expect(again.code).toBe(0);
    expect((await flotilla.tenants.get('half')).status).toBe('active');
  });

  it('never removes storage that holds data it did not make: the create fails, the data stays', async () => {
    const place = tenancyModel('database').place('stranger', project.config.tenants);
    const stranger = await insertTenantRow(flotilla, { slug: 'stranger', name: 'stranger', kind: 'database', server: 'main', ...place, operationId: null });
    await claimStorage(flotilla, { server: 'main', kind: 'database', name: place.database }, { purpose: 'tenant', tenantId: stranger.id });
    await project.query('postgres', `CREATE DATABASE "${place.database}"`);
    await project.query(place.database, 'CREATE TABLE customers (id int); INSERT INTO customers VALUES (1), (2)');
    const again = await cli('tenant', 'create', 'stranger');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
    expect(await project.query(place.database, 'SELECT count(*)::int AS n FROM customers')).toEqual([{ n: 2 }]);
    expect((await flotilla.tenants.list()).find((t) => t.slug === 'stranger')).toBeUndefined();
  });
});
