import { redactSecrets, redactValue } from './redact.js';

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
  | 'FLO_ROLLOUT_UNFINISHED';

/** Exit code per error family; a Record over the union keeps it exhaustive. */
const EXIT_CODES: Record<ErrorCode, number> = {
  FLO_USAGE: 2,
  FLO_CONFIG_NOT_FOUND: 3,
  FLO_CONFIG_INVALID: 3,
  FLO_CONFIG_EXISTS: 3,
  FLO_URL_INVALID: 3,
  FLO_SLUG_INVALID: 2,
  FLO_MIGRATIONS_DIR_MISSING: 4,
  FLO_MIGRATION_NAME_INVALID: 4,
  FLO_MIGRATION_DUPLICATE_VERSION: 4,
  FLO_SUM_MISMATCH: 4,
  FLO_SQL_SYNTAX: 4,
  FLO_TRANSACTION_CONTROL: 4,
  FLO_DIRECTIVE_INVALID: 4,
  FLO_MIGRATION_FILE_INVALID: 4,
  FLO_VERSION_NOT_FOUND: 9,
  FLO_STORAGE_TAKEN: 9,
  FLO_STORAGE_NOT_OWNED: 5,
  FLO_INTERNAL: 70,
  FLO_CHECKSUM_CHANGED: 5,
  FLO_MIGRATION_MISSING: 5,
  FLO_OUT_OF_ORDER: 5,
  FLO_SCHEMA_ESCAPE: 5,
  FLO_MIGRATION_FAILED: 6,
  FLO_TENANT_LOCKED: 7,
  FLO_CONNECTION_FAILED: 8,
  FLO_TENANT_NOT_FOUND: 9,
  FLO_TENANT_EXISTS: 9,
  FLO_SERVER_NOT_FOUND: 9,
  FLO_SERVER_EXISTS: 9,
  FLO_PROVISION_FAILED: 6,
  FLO_EMBEDDED_FAILED: 8,
  FLO_LINT_REFUSED: 5,
  FLO_DATA_LOSS: 6,
  FLO_VERIFY_FAILED: 6,
  FLO_TOOL_MISSING: 10,
  FLO_BACKUP_FAILED: 10,
  FLO_BACKUP_NOT_FOUND: 9,
  FLO_BACKUP_TAMPERED: 10,
  FLO_SNAPSHOT_UNAVAILABLE: 10,
  FLO_RESTORE_FAILED: 10,
  FLO_ROLLOUT_NOT_FOUND: 9,
  FLO_ROLLOUT_UNFINISHED: 11,
};

export type ErrorMeta = Record<string, string | number | boolean | null | string[] | ErrorMetaItem[]>;
export type ErrorMetaItem = Record<string, string | number | boolean | null>;

export class FlotillaError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly meta: ErrorMeta;

  constructor(code: ErrorCode, message: string, options: { hint?: string; meta?: ErrorMeta; cause?: unknown } = {}) {
    // Redacted here, where every error is made: no message, hint or meta can carry a password out.
    super(redactSecrets(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlotillaError';
    this.code = code;
    this.hint = options.hint === undefined ? undefined : redactSecrets(options.hint);
    this.meta = redactValue(options.meta ?? {}) as ErrorMeta;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; meta: ErrorMeta } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}), meta: this.meta };
  }
}

export function isFlotillaError(value: unknown): value is FlotillaError {
  return value instanceof FlotillaError;
}
