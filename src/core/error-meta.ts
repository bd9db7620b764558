/** JSON-safe meta of an error: what it names (tenant, file, line, ...). */
export type ErrorMeta = Record<string, string | number | boolean | null | string[] | ErrorMetaItem[]>;
export type ErrorMetaItem = Record<string, string | number | boolean | null>;

/**
 * The meta of the codes whose meta has a fixed shape: these keys are always
 * there (or, when optional, there in some of the places that raise the code).
 * A shape is open: more JSON-safe keys may come along. A code not listed has
 * plain `ErrorMeta`. Shapes are object type literals (not interfaces), so each
 * is assignable to `ErrorMeta`.
 */
export interface ErrorMetaByCode {
  FLO_CONFIG_NOT_FOUND: { file: string };
  FLO_CONFIG_INVALID: { source: string; problems?: string[] };
  FLO_CONFIG_EXISTS: { file: string };
  FLO_URL_INVALID: { url: string };
  FLO_MIGRATIONS_DIR_MISSING: { dir: string };
  FLO_MIGRATION_NAME_INVALID: { file: string };
  FLO_MIGRATION_DUPLICATE_VERSION: { id: string; files: string[] };
  FLO_MIGRATION_FILE_INVALID: { file: string; byte?: number; line?: number };
  FLO_SQL_SYNTAX: { file: string; line: number; column: number; reason: string };
  FLO_TRANSACTION_CONTROL: { file: string; line: number; statement: string };
  FLO_DIRECTIVE_INVALID: { file: string; line: number; directive: string };
  FLO_STORAGE_NOT_OWNED: { tenant: string; kind: string; name: string; server: string; database: string | null };
  FLO_MIGRATION_FAILED: {
    tenant?: string;
    file?: string;
    line?: number;
    migration?: string;
    sqlstate?: string | null;
    postgresMessage?: string;
    statement?: string;
  };
  FLO_VERIFY_FAILED: { tenant: string; where: string; result: string };
  FLO_TENANT_LOCKED: { tenant: string; pid?: number | null; application?: string | null; status?: string };
  /** `sqlstate` or `errno`: the code of the underlying error, when it had one. */
  FLO_CONNECTION_FAILED: { server?: string; database?: string; tenant?: string; reason?: string; sqlstate?: string | null; errno?: string | null };
  FLO_TENANT_NOT_FOUND: { tenant: string; schema?: string; database?: string };
  FLO_TENANT_EXISTS: { tenant: string };
  FLO_SERVER_NOT_FOUND: { server: string };
  FLO_SERVER_EXISTS: { server: string };
  FLO_BACKUP_NOT_FOUND: { backup: string; tenant?: string };
  FLO_ROLLOUT_NOT_FOUND: { rollout: string };
  FLO_VERSION_NOT_FOUND: { target: string; newest: string | null };
  FLO_STORAGE_TAKEN: { kind: string; name: string; server: string; database: string | null; claimedFor?: string | null };
  FLO_TOOL_MISSING: { tool: string; serverMajor: number; toolMajor?: number };
  FLO_ROLLOUT_UNFINISHED: { rollout?: string };
  FLO_TENANT_UNAVAILABLE: { tenant: string; reason: 'provisioning' | 'upgrading' | 'restoring' | 'maintenance'; retryAfter: number };
  FLO_TENANT_SUSPENDED: { tenant: string };
  FLO_TENANT_ARCHIVED: { tenant: string };
  FLO_RUNTIME_BUSY: { retryAfter: number; waitedMs: number };
  FLO_TENANT_AMBIGUOUS: { sources: string[] };
  FLO_BUNDLE_UNREADABLE: { reason: string };
  FLO_BUNDLE_TOO_LARGE: { limit: string };
  FLO_BUNDLE_UNSAFE_ENTRY: { entry: string; kind: string };
  FLO_BUNDLE_SIGNATURE_INVALID: { trusted: string };
  /** `trusted`: the key the site trusts (its --pubkey, or the key of the releases installed so far). */
  FLO_BUNDLE_WRONG_KEY: { keyId: string; trusted: string };
  FLO_BUNDLE_FILE_CHANGED: { file: string; expected: string; actual: string };
  FLO_BUNDLE_FILE_MISSING: { file: string };
  FLO_BUNDLE_FILE_UNLISTED: { file: string };
  FLO_BUNDLE_EXPIRED: { expiresAt: string; now: string };
  FLO_BUNDLE_OTHER_PRODUCT: { bundle: string; site: string };
  FLO_BUNDLE_INSTALLED: { installed: string; bundle: string };
  FLO_BUNDLE_OLDER: { installed: string; bundle: string };
  FLO_BUNDLE_TOO_NEW: { installed: string; bundle: string; minFrom: string };
  FLO_BUNDLE_NEEDS_FLOTILLA: { needed: string; running: string };
  FLO_BUNDLE_MISMATCH: { tenant: string; cause: string };
  FLO_BUNDLE_FAILED: { report: string; tenant: string | null };
  FLO_KEY_EXISTS: { file: string };
  FLO_KEY_INVALID: { file: string };
  FLO_DISK_SPACE: { dir: string; free: number; needed: number };
}
