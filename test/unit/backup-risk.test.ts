import { describe, expect, it } from 'vitest';
import { backupRisks } from '../../src/core/backup-risk.js';
import type { ParsedMigration } from '../../src/core/migration.js';
import type { PendingPart } from '../../src/core/schedule.js';
import { lintMigrations } from '../../src/core/lint/lint.js';
import { migration } from '../support/migrations.js';

const base = migration('0001_base', `CREATE TABLE accounts (id int PRIMARY KEY, email text, balance numeric);\nCREATE TYPE mood AS ENUM ('ok');`);

/** The risks of upgrading from 0001 through `next`, each run whole. */
function risks(...next: ParsedMigration[]): string[] {
  const lint = lintMigrations([base, ...next]);
  return backupRisks(
    next.map((m) => ({ migration: m, statements: m.statements })),
    lint,
  );
}

describe('the backup policy "risky"', () => {
  it('needs no backup for index builds outside the transaction, a unique index, NOT NULL or an enum value', () => {
    expect(
      risks(
        migration('0002_indexes', `CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);`),
        migration('0003_unique', `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON accounts (email);`),
        migration('0004_drop_index', `DROP INDEX CONCURRENTLY accounts_email_idx;`),
        migration('0005_not_null', `ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;\nALTER TYPE mood ADD VALUE 'sad';`),
      ),
    ).toEqual([]);
  });

  it('backs up an UPDATE or DELETE of existing rows, naming file and line', () => {
    expect(
      risks(
        migration('0002_backfill', `ALTER TABLE accounts ADD COLUMN plan text;\nUPDATE accounts SET plan = 'free' WHERE plan IS NULL;\nDELETE FROM accounts WHERE email IS NULL;`),
      ),
    ).toEqual(['UPDATE of existing rows at 0002_backfill.sql:2', 'DELETE of existing rows at 0002_backfill.sql:3']);
  });

  it('backs up an upsert that overwrites rows, and code whose effect cannot be read, but not a plain INSERT', () => {
    expect(
      risks(
        migration(
          '0002_seed',
          `INSERT INTO accounts (id, email) VALUES (1, 'a@x');\nINSERT INTO accounts (id, email) VALUES (2, 'b@x') ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email;`,
        ),
        migration('0003_code', `DO $$ BEGIN PERFORM 1; END $$;`),
      ),
    ).toEqual(['INSERT that overwrites values of existing rows at 0002_seed.sql:2', 'DO block, whose effect cannot be bounded at 0003_code.sql:1']);
  });

  it('backs up DML nested in a plain statement, and calls whose effect cannot be read', () => {
    expect(
      risks(
        migration('0002_move', `WITH gone AS (DELETE FROM accounts WHERE id > 2 RETURNING *) INSERT INTO archive SELECT * FROM gone;`),
        migration('0003_lo', `SELECT lo_unlink(loid) FROM attachments;`),
        migration('0004_plain', `SELECT count(*) FROM accounts;\nCREATE TABLE notes (id int);`),
      ),
    ).toEqual(['INSERT that removes existing data at 0002_move.sql:1', 'FD111 at 0003_lo.sql:1']);
  });

  it('backs up a destructive statement once, by its lint code, allowed or not', () => {
    const drop = migration('0002_drop', `-- flotilla:allow FD103 reason="moved to profiles"\nALTER TABLE accounts DROP COLUMN email;\nDELETE FROM accounts;`);
    expect(risks(drop)).toEqual(['FD103 at 0002_drop.sql:2', 'FD105 at 0002_drop.sql:3']);
  });

  it('backs up a type change, whose cast may alter values', () => {
    expect(risks(migration('0002_type', `ALTER TABLE accounts ALTER COLUMN balance TYPE integer;`))).toEqual(['FM204 at 0002_type.sql:1']);
  });

  it('backs up a statement outside the transaction that changes rows', () => {
    expect(risks(migration('0002_batch', `-- flotilla:no-transaction\nUPDATE accounts SET email = lower(email) WHERE email <> lower(email);`))).toEqual([
      'UPDATE of existing rows at 0002_batch.sql:2',
    ]);
  });

  it('looks only at what a resumed migration has left to run', () => {
    const both = migration('0002_both', `UPDATE accounts SET email = lower(email) WHERE email IS NOT NULL;\nCREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);`);
    const lint = lintMigrations([base, both]);
    const remaining: PendingPart = { migration: both, statements: both.statements.slice(1) };
    expect(backupRisks([remaining], lint)).toEqual([]);
    expect(backupRisks([{ migration: both, statements: both.statements }], lint)).toEqual(['UPDATE of existing rows at 0002_both.sql:1']);
  });
});
