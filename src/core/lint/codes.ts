export type Severity = 'error' | 'warning' | 'info';
export type Family = 'destructive' | 'data-dependent' | 'locking' | 'transactions' | 'backward-incompatible' | 'tenancy' | 'directives' | 'verification';

export interface RuleInfo {
  readonly severity: Severity;
  readonly family: Family;
  readonly title: string;
  /** What to write instead (or how to allow it when it is intended). */
  readonly instead: string;
}

/** Every code Flotilla's linter and verifier use. Stable: never renumbered, never reused. */
export const RULES = {
  FD101: { severity: 'error', family: 'destructive', title: 'drop schema', instead: 'Keep the schema, or move its data first and allow the drop with a reason.' },
  FD102: {
    severity: 'error',
    family: 'destructive',
    title: 'drop table',
    instead: 'Rename the table (e.g. to <name>_deprecated) and drop it in a later release, or allow the drop with a reason.',
  },
  FD103: {
    severity: 'error',
    family: 'destructive',
    title: 'drop column',
    instead: 'Stop writing the column first, copy what you need, and drop it in a later release with an allow and a reason.',
  },
  FD104: { severity: 'error', family: 'destructive', title: 'truncate', instead: 'Delete the rows you mean with a WHERE clause, or allow it with a reason.' },
  FD105: { severity: 'error', family: 'destructive', title: 'DELETE without WHERE', instead: 'Add a WHERE clause naming the rows to remove.' },
  FD106: { severity: 'error', family: 'destructive', title: 'UPDATE without WHERE', instead: 'Add a WHERE clause (for a back-fill: WHERE <column> IS NULL).' },
  FD107: { severity: 'error', family: 'destructive', title: 'drop of a type in use', instead: 'Change the columns that use the type first, then drop it.' },
  FD108: {
    severity: 'error',
    family: 'destructive',
    title: 'CASCADE',
    instead: 'Drop or truncate what depends on it explicitly, one statement each, so that each loss is seen and allowed on its own.',
  },
  FD109: { severity: 'error', family: 'destructive', title: 'DROP OWNED', instead: 'Drop the objects by name, each with its own statement.' },
  FD110: {
    severity: 'error',
    family: 'destructive',
    title: 'drop of a domain, extension or function in use',
    instead: 'Change what uses it first (columns, triggers, defaults), then drop it.',
  },
  FD111: {
    severity: 'error',
    family: 'destructive',
    title: 'large object removed or overwritten',
    instead: 'Keep large objects (verification cannot compare what replaces them), or allow it with a reason.',
  },
  FM201: {
    severity: 'warning',
    family: 'data-dependent',
    title: 'unique index or constraint on an existing table',
    instead: 'Check for duplicates first; build the index with CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX.',
  },
  FM202: {
    severity: 'warning',
    family: 'data-dependent',
    title: 'SET NOT NULL on an existing table',
    instead: 'Back-fill NULLs first (UPDATE ... WHERE col IS NULL); add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL.',
  },
  FM203: {
    severity: 'warning',
    family: 'data-dependent',
    title: 'NOT NULL column without a default on an existing table',
    instead: 'Add the column nullable (or with a DEFAULT), back-fill it, then SET NOT NULL.',
  },
  FM204: {
    severity: 'warning',
    family: 'data-dependent',
    title: "change of a column's type",
    instead: 'Add a new column of the new type, back-fill it, and switch the application over.',
  },
  FM205: {
    severity: 'warning',
    family: 'data-dependent',
    title: 'foreign key without NOT VALID',
    instead: 'ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later migration.',
  },
  FM206: {
    severity: 'warning',
    family: 'data-dependent',
    title: 'check constraint without NOT VALID',
    instead: 'ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in a later migration.',
  },
  FL301: {
    severity: 'warning',
    family: 'locking',
    title: 'CREATE INDEX without CONCURRENTLY on an existing table',
    instead: 'CREATE INDEX CONCURRENTLY (Flotilla runs it after the transaction, recorded on its own).',
  },
  FL302: {
    severity: 'warning',
    family: 'locking',
    title: 'change that rewrites the whole table',
    instead: 'Add a new column and back-fill it in batches; a constant DEFAULT does not rewrite.',
  },
  FL303: { severity: 'warning', family: 'locking', title: 'no lock_timeout', instead: "Start the file with SET lock_timeout = '5s', or set engine.lockTimeout." },
  FT401: { severity: 'warning', family: 'transactions', title: 'statement that cannot run in a transaction, mixed with others', instead: 'Put it in a file of its own.' },
  FT402: {
    severity: 'warning',
    family: 'transactions',
    title: 'explicit BEGIN/COMMIT',
    instead: 'Remove it: Flotilla runs the whole upgrade of a tenant in one transaction (it drops these).',
  },
  FT403: {
    severity: 'warning',
    family: 'transactions',
    title: 'data change outside the transaction',
    instead: 'Keep data changes in transactional files; outside, Flotilla backs the tenant up and compares around each statement, but cannot roll a loss back.',
  },
  FB501: {
    severity: 'warning',
    family: 'backward-incompatible',
    title: 'rename table',
    instead: 'Create the new table (or a view under the new name), move the app over, then drop the old one in a later release.',
  },
  FB502: {
    severity: 'warning',
    family: 'backward-incompatible',
    title: 'rename column',
    instead: 'Add the new column, write both, move reads over, then drop the old one in a later release.',
  },
  FN601: {
    severity: 'warning',
    family: 'tenancy',
    title: 'hard-coded schema',
    instead: 'Leave names unqualified; Flotilla puts them in each tenant’s schema (it rewrites qualified names for schema tenants).',
  },
  FN602: {
    severity: 'error',
    family: 'tenancy',
    title: 'schema a tenant does not own',
    instead: 'Create the schema in a migration (each schema tenant gets its own copy), or use the database tenancy kind.',
  },
  FN603: {
    severity: 'error',
    family: 'tenancy',
    title: 'new table without the tenant column',
    instead: 'Add the tenant column (lint.tenantColumn), or list the table in lint.globalTables if it holds no tenant rows.',
  },
  FN604: {
    severity: 'error',
    family: 'tenancy',
    title: 'new table without row-level security',
    instead: 'ALTER TABLE ... ENABLE ROW LEVEL SECURITY and add a policy on the tenant column, in the same migration.',
  },
  FN605: {
    severity: 'error',
    family: 'tenancy',
    title: 'change of role',
    instead: "Remove it: a schema tenant's migrations run under the tenant's own role, which they may not leave (migrate refuses it whatever the allows).",
  },
  FX901: { severity: 'error', family: 'directives', title: 'allow without a reason', instead: 'Write -- flotilla:allow <CODE> reason="why this is safe".' },
  FX902: { severity: 'error', family: 'directives', title: 'allow of an unknown code', instead: 'Use a code from the catalogue (README, "Lint codes").' },
  FX903: { severity: 'warning', family: 'directives', title: 'allow that matches nothing', instead: 'Remove it, or move it next to the statement it is meant for.' },
  FX904: {
    severity: 'warning',
    family: 'directives',
    title: 'allow next to no statement',
    instead: 'Put it on the line just above the statement it allows, or at the end of that statement.',
  },
  FV701: {
    severity: 'error',
    family: 'verification',
    title: 'rows lost',
    instead: 'If the rows are meant to go, allow it on the statement that removes them: -- flotilla:allow FV701 reason="…".',
  },
  FV702: { severity: 'error', family: 'verification', title: 'table lost', instead: 'Allow the DROP TABLE (FD102) with a reason, or rename the table instead.' },
  FV703: { severity: 'error', family: 'verification', title: 'column data lost', instead: 'Allow the DROP COLUMN (FD103) with a reason, or keep the column.' },
  FV704: {
    severity: 'error',
    family: 'verification',
    title: 'values changed by a type change',
    instead: 'Convert to a type that holds every value (or fix the values first), or allow the loss with a reason.',
  },
  FV705: {
    severity: 'error',
    family: 'verification',
    title: 'values overwritten',
    instead: 'With verify.values "refuse", overwriting existing values needs -- flotilla:allow FV705 reason="…" on the statement that does it.',
  },
  FV706: { severity: 'error', family: 'verification', title: 'large objects lost', instead: 'Keep the large objects, or allow their removal (FD111) with a reason.' },
} as const satisfies Record<string, RuleInfo>;

export type LintCode = keyof typeof RULES;

export function isLintCode(code: string): code is LintCode {
  return Object.hasOwn(RULES, code);
}

/**
 * Findings whose statement removes or rewrites existing data (the backup policy
 * `risky` backs those upgrades up): the destructive family, and a column type
 * change, whose cast may alter values. Other data-dependent findings can make an
 * upgrade fail, which rolls it back whole, but never change a value.
 */
export function changesData(code: LintCode): boolean {
  return RULES[code].family === 'destructive' || code === 'FM204';
}
