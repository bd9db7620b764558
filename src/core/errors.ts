import type { ErrorMeta, ErrorMetaByCode } from './error-meta.js';
import { redactSecrets, redactValue } from './redact.js';

export type { ErrorMeta, ErrorMetaByCode, ErrorMetaItem } from './error-meta.js';

/**
 * Errors are data: a stable code, a message that says what happened, a hint that
 * says what to do next, and JSON-safe meta (tenant, file, line, ...).
 */
export type ErrorCode =
  | 'FLO_USAGE'
  | 'FLO_CONFIG_NOT_FOUND'
  | 'FLO_CONFIG_INVALID'
  | 'FLO_CONFIG_EXISTS'
  | 'FLO_URL_INVALID'
  | 'FLO_SLUG_INVALID'
  | 'FLO_MIGRATIONS_DIR_MISSING'
  | 'FLO_MIGRATION_NAME_INVALID'
  | 'FLO_MIGRATION_DUPLICATE_VERSION'
  | 'FLO_SUM_MISMATCH'
  | 'FLO_SQL_SYNTAX'
  | 'FLO_TRANSACTION_CONTROL'
  | 'FLO_DIRECTIVE_INVALID'
  | 'FLO_MIGRATION_FILE_INVALID'
  | 'FLO_VERSION_NOT_FOUND'
  | 'FLO_STORAGE_TAKEN'
  | 'FLO_STORAGE_NOT_OWNED'
  | 'FLO_INTERNAL'
  | 'FLO_CHECKSUM_CHANGED'
  | 'FLO_MIGRATION_MISSING'
  | 'FLO_OUT_OF_ORDER'
  | 'FLO_SCHEMA_ESCAPE'
  | 'FLO_MIGRATION_FAILED'
  | 'FLO_TENANT_LOCKED'
  | 'FLO_CONNECTION_FAILED'
  | 'FLO_TENANT_NOT_FOUND'
  | 'FLO_TENANT_EXISTS'
  | 'FLO_SERVER_NOT_FOUND'
  | 'FLO_SERVER_EXISTS'
  | 'FLO_PROVISION_FAILED'
  | 'FLO_EMBEDDED_FAILED'
  | 'FLO_LINT_REFUSED'
  | 'FLO_DATA_LOSS'
  | 'FLO_VERIFY_FAILED'
  | 'FLO_TOOL_MISSING'
  | 'FLO_BACKUP_FAILED'
  | 'FLO_BACKUP_NOT_FOUND'
  | 'FLO_BACKUP_TAMPERED'
  | 'FLO_SNAPSHOT_UNAVAILABLE'
  | 'FLO_RESTORE_FAILED'
  | 'FLO_ROLLOUT_NOT_FOUND'
  | 'FLO_ROLLOUT_UNFINISHED'
  | 'FLO_TENANT_UNRESOLVED'
  | 'FLO_TENANT_AMBIGUOUS'
  | 'FLO_TENANT_UNAVAILABLE'
  | 'FLO_TENANT_SUSPENDED'
  | 'FLO_TENANT_ARCHIVED'
  | 'FLO_RUNTIME_BUSY'
  | 'FLO_NO_TENANT_SCOPE'
  | 'FLO_PATH_ESCAPE'
  | 'FLO_BUNDLE_UNREADABLE'
  | 'FLO_BUNDLE_TOO_LARGE'
  | 'FLO_BUNDLE_UNSAFE_ENTRY'
  | 'FLO_BUNDLE_SIGNATURE_INVALID'
  | 'FLO_BUNDLE_WRONG_KEY'
  | 'FLO_BUNDLE_FILE_CHANGED'
  | 'FLO_BUNDLE_FILE_MISSING'
  | 'FLO_BUNDLE_FILE_UNLISTED'
  | 'FLO_BUNDLE_EXPIRED'
  | 'FLO_BUNDLE_OTHER_PRODUCT'
  | 'FLO_BUNDLE_INSTALLED'
  | 'FLO_BUNDLE_OLDER'
  | 'FLO_BUNDLE_TOO_NEW'
  | 'FLO_BUNDLE_NEEDS_FLOTILLA'
  | 'FLO_BUNDLE_FAILED'
  | 'FLO_BUNDLE_MISMATCH'
  | 'FLO_BUNDLE_IN_PROGRESS'
  | 'FLO_KEY_EXISTS'
  | 'FLO_KEY_INVALID'
  | 'FLO_DISK_SPACE';

/**
 * What kind of failure a code is. Whatever sits at an edge derives its answer
 * from the family alone, never from the code: the CLI its exit code
 * (`EXIT_CODE_BY_FAMILY` in src/cli/output.ts), an HTTP API its status
 * (`HTTP_STATUS_BY_FAMILY` below). A new code needs only its family here.
 *
 * - `usage`: the command line or the call is wrong (a flag, a slug, a name).
 * - `config`: the project's configuration is missing or invalid.
 * - `definition`: the migrations directory is invalid (files, names, `flotilla.sum`, SQL).
 * - `refused`: Flotilla will not do it in this state (changed or missing history, lint, storage it does not own).
 * - `failed`: it was tried and failed, and was rolled back (a migration, provisioning, verification).
 * - `locked`: another process holds the tenant; try again later.
 * - `unavailable`: PostgreSQL cannot be reached or went away (including the embedded server).
 * - `not-found`: the registry has no such tenant, server, backup, rollout or version, or already has the name
 *   (`*_EXISTS`, `FLO_STORAGE_TAKEN`: they share the family, and so the exit code, with the lookups).
 * - `tooling`: backups and restores: a missing or old pg_dump/pg_restore, a failed dump, a tampered backup.
 * - `unfinished`: an earlier rollout is unfinished or halted.
 * - `forbidden`: the tenant exists but is suspended: its app answers 403.
 * - `gone`: the tenant is archived: its app answers 410.
 * - `internal`: a bug in Flotilla (`FLO_INTERNAL`, and every error that is not a FlotillaError).
 */
export const ERROR_FAMILY_NAMES = [
  'usage',
  'config',
  'definition',
  'refused',
  'failed',
  'locked',
  'unavailable',
  'not-found',
  'tooling',
  'unfinished',
  'forbidden',
  'gone',
  'internal',
] as const;

export type ErrorFamily = (typeof ERROR_FAMILY_NAMES)[number];

/** The family of every code; typed as a Record over the union, so a code without a family does not compile. */
export const ERROR_FAMILIES: Readonly<Record<ErrorCode, ErrorFamily>> = Object.freeze({
  FLO_USAGE: 'usage',
  FLO_SLUG_INVALID: 'usage',
  FLO_TENANT_UNRESOLVED: 'usage',
  FLO_TENANT_AMBIGUOUS: 'usage',
  FLO_PATH_ESCAPE: 'usage',
  FLO_KEY_INVALID: 'usage',

  FLO_CONFIG_NOT_FOUND: 'config',
  FLO_CONFIG_INVALID: 'config',
  FLO_CONFIG_EXISTS: 'config',
  FLO_URL_INVALID: 'config',

  FLO_MIGRATIONS_DIR_MISSING: 'definition',
  FLO_MIGRATION_NAME_INVALID: 'definition',
  FLO_MIGRATION_DUPLICATE_VERSION: 'definition',
  FLO_MIGRATION_FILE_INVALID: 'definition',
  FLO_SUM_MISMATCH: 'definition',
  FLO_SQL_SYNTAX: 'definition',
  FLO_TRANSACTION_CONTROL: 'definition',
  FLO_DIRECTIVE_INVALID: 'definition',

  FLO_CHECKSUM_CHANGED: 'refused',
  FLO_MIGRATION_MISSING: 'refused',
  FLO_OUT_OF_ORDER: 'refused',
  FLO_SCHEMA_ESCAPE: 'refused',
  FLO_LINT_REFUSED: 'refused',
  FLO_STORAGE_NOT_OWNED: 'refused',
  FLO_BUNDLE_UNREADABLE: 'refused',
  FLO_BUNDLE_TOO_LARGE: 'refused',
  FLO_BUNDLE_UNSAFE_ENTRY: 'refused',
  FLO_BUNDLE_SIGNATURE_INVALID: 'refused',
  FLO_BUNDLE_WRONG_KEY: 'refused',
  FLO_BUNDLE_FILE_CHANGED: 'refused',
  FLO_BUNDLE_FILE_MISSING: 'refused',
  FLO_BUNDLE_FILE_UNLISTED: 'refused',
  FLO_BUNDLE_EXPIRED: 'refused',
  FLO_BUNDLE_OTHER_PRODUCT: 'refused',
  FLO_BUNDLE_INSTALLED: 'refused',
  FLO_BUNDLE_OLDER: 'refused',
  FLO_BUNDLE_TOO_NEW: 'refused',
  FLO_BUNDLE_NEEDS_FLOTILLA: 'refused',
  FLO_BUNDLE_MISMATCH: 'refused',

  FLO_MIGRATION_FAILED: 'failed',
  FLO_PROVISION_FAILED: 'failed',
  FLO_DATA_LOSS: 'failed',
  FLO_VERIFY_FAILED: 'failed',
  FLO_BUNDLE_FAILED: 'failed',

  FLO_TENANT_LOCKED: 'locked',
  FLO_BUNDLE_IN_PROGRESS: 'locked',

  FLO_CONNECTION_FAILED: 'unavailable',
  FLO_EMBEDDED_FAILED: 'unavailable',
  FLO_TENANT_UNAVAILABLE: 'unavailable',
  FLO_RUNTIME_BUSY: 'unavailable',

  FLO_TENANT_NOT_FOUND: 'not-found',
  FLO_TENANT_EXISTS: 'not-found',
  FLO_SERVER_NOT_FOUND: 'not-found',
  FLO_SERVER_EXISTS: 'not-found',
  FLO_BACKUP_NOT_FOUND: 'not-found',
  FLO_ROLLOUT_NOT_FOUND: 'not-found',
  FLO_VERSION_NOT_FOUND: 'not-found',
  FLO_STORAGE_TAKEN: 'not-found',
  FLO_KEY_EXISTS: 'not-found',

  FLO_TOOL_MISSING: 'tooling',
  FLO_BACKUP_FAILED: 'tooling',
  FLO_BACKUP_TAMPERED: 'tooling',
  FLO_SNAPSHOT_UNAVAILABLE: 'tooling',
  FLO_RESTORE_FAILED: 'tooling',
  FLO_DISK_SPACE: 'tooling',

  FLO_ROLLOUT_UNFINISHED: 'unfinished',

  FLO_TENANT_SUSPENDED: 'forbidden',
  FLO_TENANT_ARCHIVED: 'gone',

  FLO_INTERNAL: 'internal',
  FLO_NO_TENANT_SCOPE: 'internal',
});

export function errorFamily(code: ErrorCode): ErrorFamily {
  return ERROR_FAMILIES[code];
}

/**
 * The HTTP status for each family, for an HTTP API over the library:
 *
 * | family | status | why |
 * | --- | --- | --- |
 * | usage | 400 Bad Request | the request itself is wrong |
 * | config | 500 Internal Server Error | the service's own configuration is broken; the caller cannot fix it |
 * | definition | 422 Unprocessable Content | the request is well-formed, but the migrations it would apply are invalid |
 * | refused | 409 Conflict | the state of the tenant or its storage forbids it (changed history, lint, ownership) |
 * | failed | 422 Unprocessable Content | it was tried on the tenant and rolled back (a failing migration, data loss, a verify query) |
 * | locked | 423 Locked | another process holds the tenant right now; retry later |
 * | unavailable | 503 Service Unavailable | PostgreSQL cannot be reached; retry later |
 * | not-found | 404 Not Found | no such tenant, server, backup, rollout or version (also the family's `*_EXISTS` and `FLO_STORAGE_TAKEN`, see `ErrorFamily`) |
 * | tooling | 500 Internal Server Error | the backup tooling of the service failed or is missing |
 * | unfinished | 409 Conflict | an unfinished rollout stands in the way |
 * | internal | 500 Internal Server Error | a bug |
 */
export const HTTP_STATUS_BY_FAMILY: Readonly<Record<ErrorFamily, number>> = Object.freeze({
  usage: 400,
  config: 500,
  definition: 422,
  refused: 409,
  failed: 422,
  locked: 423,
  unavailable: 503,
  'not-found': 404,
  tooling: 500,
  unfinished: 409,
  forbidden: 403,
  gone: 410,
  internal: 500,
});

/** The meta of an error with code `C`: its shape in `ErrorMetaByCode` (still open to more keys), else `ErrorMeta`. */
export type ErrorMetaOf<C extends ErrorCode> = C extends keyof ErrorMetaByCode ? ErrorMetaByCode[C] & ErrorMeta : ErrorMeta;

export interface FlotillaErrorOptions<C extends ErrorCode = ErrorCode> {
  hint?: string;
  meta?: ErrorMetaOf<C>;
  cause?: unknown;
}

/** The options are optional unless the code's meta has keys it must have; then they and their meta are required. */
type OptionsArgument<C extends ErrorCode> =
  Record<never, never> extends ErrorMetaOf<C> ? [options?: FlotillaErrorOptions<C>] : [options: FlotillaErrorOptions<C> & { meta: ErrorMetaOf<C> }];

export class FlotillaError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly hint: string | undefined;
  readonly meta: ErrorMetaOf<C>;

  constructor(code: C, message: string, ...[options]: OptionsArgument<C>) {
    const { hint, meta, cause } = (options ?? {}) as FlotillaErrorOptions<C>;
    // Redacted here, where every error is made: no message, hint or meta can carry a password out.
    super(redactSecrets(message), cause === undefined ? undefined : { cause });
    this.name = 'FlotillaError';
    this.code = code;
    this.hint = hint === undefined ? undefined : redactSecrets(hint);
    this.meta = redactValue(meta ?? {}) as ErrorMetaOf<C>;
  }

  /** What kind of failure this is: exit codes and HTTP statuses are derived from it. */
  get family(): ErrorFamily {
    return ERROR_FAMILIES[this.code];
  }

  toJSON(): { code: C; message: string; hint?: string; meta: ErrorMetaOf<C> } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}), meta: this.meta };
  }
}

/**
 * A FlotillaError of one of the codes `C`, as a union with one member per code,
 * so that testing `error.code` narrows `error.meta` too. `AnyFlotillaError` is
 * any FlotillaError that way.
 */
export type FlotillaErrorOf<C extends ErrorCode> = C extends ErrorCode ? FlotillaError<C> : never;
export type AnyFlotillaError = FlotillaErrorOf<ErrorCode>;

/**
 * Whether `value` is a FlotillaError, or, given codes, a FlotillaError of one of them:
 * `isFlotillaError(error, 'FLO_TENANT_NOT_FOUND') && error.meta.tenant`.
 */
export function isFlotillaError<C extends ErrorCode = ErrorCode>(value: unknown, ...codes: readonly C[]): value is FlotillaErrorOf<C> {
  return value instanceof FlotillaError && (codes.length === 0 || codes.includes(value.code as C));
}

/** SQLSTATEs of a session that broke or could not start: class 08 (connection exception), the server's shutdowns, and too many clients. */
const CONNECTION_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;
/** Node's errors for a network that failed under the connection. */
const NETWORK_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** node-postgres's and pg-pool's errors for a broken or timed-out connection, which carry no code. */
const CONNECTION_MESSAGE = /^(Connection terminated\b|Client has encountered a connection error|timeout exceeded when trying to connect)/;

/**
 * Whether an error means that PostgreSQL could not be reached or the session
 * broke (as opposed to a statement that failed): SQLSTATE class 08, 57P01
 * (admin shutdown), 57P02 (crash shutdown), 57P03 (cannot connect now); Node's
 * network errors (ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT, …); node-postgres's
 * "Connection terminated unexpectedly" and "Client has encountered a connection
 * error"; and FLO_CONNECTION_FAILED itself. Looks into `cause` and into the
 * `errors` of an AggregateError (a refused connection to each address of a host).
 */
export function isConnectionError(error: unknown): boolean {
  return connectionErrorIn(error, 0);
}

function connectionErrorIn(error: unknown, depth: number): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  if (error instanceof FlotillaError) return error.code === 'FLO_CONNECTION_FAILED';
  const { code, message, cause, errors } = error as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && (CONNECTION_SQLSTATE.test(code) || NETWORK_ERRNO.has(code))) return true;
  if (typeof message === 'string' && CONNECTION_MESSAGE.test(message)) return true;
  if (Array.isArray(errors) && errors.some((inner) => connectionErrorIn(inner, depth + 1))) return true;
  return connectionErrorIn(cause, depth + 1);
}

/**
 * Any thrown value as a FlotillaError: a FlotillaError as it is; a lost or
 * refused connection (`isConnectionError`) as FLO_CONNECTION_FAILED; anything
 * else as FLO_INTERNAL, a bug. The original is kept as `cause`.
 */
export function toFlotillaError(error: unknown): AnyFlotillaError {
  if (isFlotillaError(error)) return error;
  const reason = describe(error);
  if (isConnectionError(error)) {
    return new FlotillaError('FLO_CONNECTION_FAILED', `The connection to PostgreSQL failed: ${reason}`, {
      hint: 'Check that the server is running and reachable, then run the command again: what was under way was rolled back or is finished by the next command.',
      meta: { reason, ...codesOf(error) },
      cause: error,
    });
  }
  return new FlotillaError('FLO_INTERNAL', `Internal error (a bug in Flotilla): ${reason}`, {
    hint: 'This is a bug in Flotilla: please report it with the command you ran and this message.',
    cause: error,
  });
}

/**
 * The code an error carries, told apart: a PostgreSQL SQLSTATE (five characters,
 * `23505`, `57P01`, `XX000`) or a Node errno (`ECONNREFUSED`, `EPIPE`: no SQLSTATE
 * class starts with E).
 */
export function codesOf(error: unknown): { sqlstate: string | null; errno: string | null } {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code !== 'string') return { sqlstate: null, errno: null };
  if (/^E[A-Z0-9_]+$/.test(code)) return { sqlstate: null, errno: code };
  return /^[0-9A-Z]{5}$/.test(code) ? { sqlstate: code, errno: null } : { sqlstate: null, errno: null };
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text = error.message || (typeof code === 'string' ? code : '');
    return error.name && error.name !== 'Error' ? `${error.name}: ${text}` : text || String(error);
  }
  return String(error);
}
