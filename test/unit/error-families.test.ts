import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT_CODE_BY_FAMILY, exitCodeOf } from '../../src/cli/output.js';
import {
  type AnyFlotillaError,
  ERROR_FAMILIES,
  ERROR_FAMILY_NAMES,
  type ErrorCode,
  FlotillaError,
  HTTP_STATUS_BY_FAMILY,
  errorFamily,
  isConnectionError,
  isFlotillaError,
  toFlotillaError,
} from '../../src/core/errors.js';
import { connect } from '../../src/postgres/connect.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The members of the ErrorCode union, read from its source. */
function declaredCodes(): string[] {
  const source = readFileSync(`${REPO}/src/core/errors.ts`, 'utf8');
  const union = /export type ErrorCode =([^;]+);/.exec(source)![1]!;
  return [...union.matchAll(/'(FLO_[A-Z_]+)'/g)].map((m) => m[1]!);
}

/** The README's exit-code table (## Errors): exit code → the codes it lists. */
function readmeExitTable(): Map<number, string[]> {
  const readme = readFileSync(`${REPO}/README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('\n## Errors'), readme.indexOf('\n## ', readme.indexOf('\n## Errors') + 1));
  const table = new Map<number, string[]>();
  for (const row of section.matchAll(/^\| (\d+) \| (.*) \|$/gm)) {
    table.set(
      Number(row[1]),
      [...row[2]!.matchAll(/`(FLO_[A-Z_]+)`/g)].map((m) => m[1]!),
    );
  }
  return table;
}

/** A pg-shaped error, as node-postgres makes it from an ErrorResponse. */
function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'FATAL' });
}

/** A Node network error, as `net` makes it. */
function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: 'connect' });
}

describe('error families', () => {
  it('gives every code a family, and only codes', () => {
    const codes = declaredCodes();
    expect(codes.length).toBeGreaterThan(40);
    expect(Object.keys(ERROR_FAMILIES).sort()).toEqual([...codes].sort());
    for (const code of codes) expect(ERROR_FAMILY_NAMES).toContain(errorFamily(code as ErrorCode));
  });

  it('uses every family', () => {
    expect(new Set(Object.values(ERROR_FAMILIES))).toEqual(new Set(ERROR_FAMILY_NAMES));
  });

  it('puts the codes in the families their names say', () => {
    expect(errorFamily('FLO_USAGE')).toBe('usage');
    expect(errorFamily('FLO_SLUG_INVALID')).toBe('usage');
    expect(errorFamily('FLO_CONFIG_INVALID')).toBe('config');
    expect(errorFamily('FLO_SQL_SYNTAX')).toBe('definition');
    expect(errorFamily('FLO_CHECKSUM_CHANGED')).toBe('refused');
    expect(errorFamily('FLO_MIGRATION_FAILED')).toBe('failed');
    expect(errorFamily('FLO_TENANT_LOCKED')).toBe('locked');
    expect(errorFamily('FLO_CONNECTION_FAILED')).toBe('unavailable');
    expect(errorFamily('FLO_TENANT_NOT_FOUND')).toBe('not-found');
    expect(errorFamily('FLO_TOOL_MISSING')).toBe('tooling');
    expect(errorFamily('FLO_ROLLOUT_UNFINISHED')).toBe('unfinished');
    expect(errorFamily('FLO_INTERNAL')).toBe('internal');
  });

  it('gives an error its family', () => {
    const error = new FlotillaError('FLO_TENANT_NOT_FOUND', 'No tenant with slug acme.', { meta: { tenant: 'acme' } });
    expect(error.family).toBe('not-found');
    expect(new FlotillaError('FLO_USAGE', 'Say which tenants.').family).toBe('usage');
  });
});

describe('exit codes', () => {
  it('are one per family', () => {
    expect(EXIT_CODE_BY_FAMILY).toEqual({
      usage: 2,
      config: 3,
      definition: 4,
      refused: 5,
      failed: 6,
      locked: 7,
      unavailable: 8,
      'not-found': 9,
      tooling: 10,
      unfinished: 11,
      forbidden: 12,
      gone: 13,
      internal: 70,
    });
    const codes = Object.values(EXIT_CODE_BY_FAMILY);
    expect(new Set(codes).size).toBe(codes.length);
    // 0 is success, 1 a command that found problems (status, lint): no error family may use them.
    expect(codes).not.toContain(0);
    expect(codes).not.toContain(1);
  });

  it('are what the README says for every code', () => {
    const table = readmeExitTable();
    const listed = [...table.values()].flat();
    expect([...listed].sort()).toEqual(Object.keys(ERROR_FAMILIES).sort());
    for (const [exit, codes] of table) {
      for (const code of codes) expect({ code, exit: EXIT_CODE_BY_FAMILY[errorFamily(code as ErrorCode)] }).toEqual({ code, exit });
    }
  });

  it('come from the family of what was thrown', () => {
    expect(exitCodeOf(new FlotillaError('FLO_USAGE', 'Say which tenants.'))).toBe(2);
    expect(exitCodeOf(new FlotillaError('FLO_TENANT_LOCKED', 'Tenant acme is locked.', { meta: { tenant: 'acme' } }))).toBe(7);
    expect(exitCodeOf(new TypeError('x is not a function'))).toBe(70);
    expect(exitCodeOf('a string')).toBe(70);
    expect(exitCodeOf(pgError('57P01', 'terminating connection due to administrator command'))).toBe(8);
  });
});

describe('HTTP statuses', () => {
  it('are one per family, all errors', () => {
    expect(Object.keys(HTTP_STATUS_BY_FAMILY).sort()).toEqual([...ERROR_FAMILY_NAMES].sort());
    for (const status of Object.values(HTTP_STATUS_BY_FAMILY)) expect(status >= 400 && status <= 599).toBe(true);
    expect(HTTP_STATUS_BY_FAMILY.usage).toBe(400);
    expect(HTTP_STATUS_BY_FAMILY['not-found']).toBe(404);
    expect(HTTP_STATUS_BY_FAMILY.unavailable).toBe(503);
    expect(HTTP_STATUS_BY_FAMILY.internal).toBe(500);
  });
});

describe('toFlotillaError', () => {
  it('keeps a FlotillaError as it is', () => {
    const error = new FlotillaError('FLO_SERVER_NOT_FOUND', 'No server named eu.', { meta: { server: 'eu' } });
    expect(toFlotillaError(error)).toBe(error);
  });

  it.each([
    ['57P01', 'terminating connection due to administrator command'],
    ['57P02', 'terminating connection due to crash of another server process'],
    ['57P03', 'the database system is starting up'],
    ['08006', 'connection failure'],
    ['53300', 'sorry, too many clients already'],
    ['08001', 'could not connect'],
  ])('makes a PostgreSQL error %s a connection failure', (code, message) => {
    const cause = pgError(code, message);
    const error = toFlotillaError(cause);
    expect(error.code).toBe('FLO_CONNECTION_FAILED');
    expect(error.family).toBe('unavailable');
    expect(error.message).toContain(message);
    expect(error.cause).toBe(cause);
    expect(error.meta).toMatchObject({ sqlstate: code, errno: null });
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'])('makes a network error %s a connection failure', (code) => {
    const cause = networkError(code);
    const error = toFlotillaError(cause);
    expect(error.code).toBe('FLO_CONNECTION_FAILED');
    expect(error.cause).toBe(cause);
    expect(error.meta).toMatchObject({ sqlstate: null, errno: code });
  });

  it.each(['Connection terminated unexpectedly', 'Client has encountered a connection error and is not queryable', 'Connection terminated'])(
    'makes node-postgres\'s "%s" a connection failure',
    (message) => {
      expect(toFlotillaError(new Error(message)).code).toBe('FLO_CONNECTION_FAILED');
    },
  );

  it('finds a refused connection in an AggregateError (every address of a host refused) and in a cause', () => {
    const aggregate = Object.assign(new AggregateError([networkError('ECONNREFUSED'), networkError('ECONNREFUSED')], ''), { code: 'ECONNREFUSED' });
    expect(toFlotillaError(aggregate).code).toBe('FLO_CONNECTION_FAILED');
    expect(toFlotillaError(aggregate).message).toContain('ECONNREFUSED');
    expect(isConnectionError(new AggregateError([networkError('ECONNRESET')]))).toBe(true);
    expect(isConnectionError(new Error('query failed', { cause: networkError('ECONNRESET') }))).toBe(true);
  });

  it('makes a real refused connection a connection failure', async () => {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ host: '127.0.0.1', port: 1, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 5000 });
    const cause = await client.connect().then(
      () => undefined,
      (error: unknown) => error,
    );
    await client.end().catch(() => undefined);
    expect(isConnectionError(cause)).toBe(true);
    expect(toFlotillaError(cause).code).toBe('FLO_CONNECTION_FAILED');
  });

  it('says what to check when connect() is refused', async () => {
    const error = await connect('postgres://nobody:secret@127.0.0.1:1/x', 'nothing').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFlotillaError(error, 'FLO_CONNECTION_FAILED')).toBe(true);
    const failed = error as FlotillaError<'FLO_CONNECTION_FAILED'>;
    expect(failed.hint).toContain('cannot be reached');
    expect(failed.meta.database).toBe('nothing');
    expect(failed.message).not.toContain('secret');
  });

  it('makes anything else an internal error, a bug to report', () => {
    const cause = new TypeError("Cannot read properties of undefined (reading 'slug')");
    const error = toFlotillaError(cause);
    expect(error.code).toBe('FLO_INTERNAL');
    expect(error.family).toBe('internal');
    expect(error.message).toMatch(/bug/);
    expect(error.message).toContain("TypeError: Cannot read properties of undefined (reading 'slug')");
    expect(error.hint).toMatch(/report/);
    expect(error.cause).toBe(cause);
    expect(toFlotillaError('thrown string').message).toContain('thrown string');
    expect(toFlotillaError(undefined).code).toBe('FLO_INTERNAL');
    expect(toFlotillaError(null).code).toBe('FLO_INTERNAL');
  });

  it('leaves a statement error (not the connection) internal', () => {
    expect(isConnectionError(pgError('23505', 'duplicate key value violates unique constraint'))).toBe(false);
    expect(isConnectionError(pgError('57014', 'canceling statement due to statement timeout'))).toBe(false);
    expect(isConnectionError(new Error('connection string is invalid'))).toBe(false);
    expect(toFlotillaError(pgError('42P01', 'relation "x" does not exist')).code).toBe('FLO_INTERNAL');
  });

  it('redacts passwords from what it wraps', () => {
    const error = toFlotillaError(new Error('failed for postgres://u:hunter2@db/x'));
    expect(error.message).not.toContain('hunter2');
  });
});

describe('typed meta', () => {
  it('types the meta of a code that has a shape', () => {
    const notFound = new FlotillaError('FLO_VERSION_NOT_FOUND', 'No migration has version 9.', { meta: { target: '9', newest: '0003' } });
    const newest: string | null = notFound.meta.newest;
    expect(newest).toBe('0003');

    // @ts-expect-error: FLO_TENANT_NOT_FOUND's meta names the tenant as a string
    void new FlotillaError('FLO_TENANT_NOT_FOUND', 'No tenant.', { meta: { tenant: 42 } });
    // @ts-expect-error: and must name it
    void new FlotillaError('FLO_TENANT_NOT_FOUND', 'No tenant.', { meta: { slug: 'acme' } });
    // @ts-expect-error: a code with a meta shape needs its meta
    void new FlotillaError('FLO_TENANT_LOCKED', 'Locked.');
    // A code without a shape takes any JSON-safe meta, or none.
    void new FlotillaError('FLO_USAGE', 'Bad flag.', { meta: { flag: '--to', value: 'x' } });
  });

  it('narrows the meta with the code', () => {
    const thrown: unknown = new FlotillaError('FLO_TENANT_LOCKED', 'Tenant acme is locked.', { meta: { tenant: 'acme', pid: 42, application: null } });
    if (isFlotillaError(thrown, 'FLO_TENANT_LOCKED', 'FLO_TENANT_NOT_FOUND')) {
      const tenant: string = thrown.meta.tenant;
      expect(tenant).toBe('acme');
    } else {
      expect.unreachable();
    }
    const any = thrown as AnyFlotillaError;
    if (any.code === 'FLO_TENANT_LOCKED') {
      const pid: number | null | undefined = any.meta.pid;
      expect(pid).toBe(42);
    } else {
      expect.unreachable();
    }
    expect(isFlotillaError(thrown, 'FLO_USAGE')).toBe(false);
    expect(isFlotillaError(thrown)).toBe(true);
    expect(isFlotillaError(new Error('x'))).toBe(false);
  });
});
