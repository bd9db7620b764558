import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';

/**
 * Makes an app's pooled session fit for another tenant: everything a previous
 * tenant's code could have left on it is undone (role, settings, temporary
 * tables, sequence values read, cursors, notifications listened to, advisory locks), then the
 * search_path is the tenant's schema alone. One round trip.
 */
export async function bindSession(client: pg.Client, schema: string): Promise<void> {
  await client.query(
    `SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DISCARD TEMP; DISCARD SEQUENCES; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); SET search_path TO ${quoteIdent(schema)}`,
  );
}

/** Runs `fn` in one transaction on `client`: committed when it returns, rolled back when it throws. */
export async function inSessionTransaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
