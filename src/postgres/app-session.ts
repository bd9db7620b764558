import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';

/**
 * Makes an app's pooled session fit for another tenant: everything a previous
 * tenant's code could have left on it is undone (role, settings, temporary
 * tables, sequence values read, cursors, notifications listened to, advisory locks), then the
 * search_path is the tenant's schema alone. One round trip.
 */
export async function bindSession(client: pg.Client, schema: string): Promise<void> {
  await client.query(bindSql(schema));
}

/**
 * Binds the session and runs one query in the same round trip: the binding is
 * written, and the query right behind it, before either answer comes back. The
 * binding is one transaction (BEGIN … COMMIT) so that if any of it fails the
 * session is left in a failed transaction, where the query behind it cannot
 * run: it never runs unbound. Either failing rejects.
 */
export async function withBinding<T>(client: pg.Client, schema: string, query: () => Promise<T>): Promise<T> {
  const pipelined = client as unknown as { pipeline: boolean };
  pipelined.pipeline = true;
  try {
    const bound = client.query(`BEGIN; ${bindSql(schema)}; COMMIT`);
    const ran = query();
    const [binding, result] = await Promise.allSettled([bound, ran]);
    if (binding.status === 'rejected') throw binding.reason;
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  } finally {
    // Only while both were on the wire: cursors (which pipelining refuses) work on the session again.
    pipelined.pipeline = false;
  }
}

function bindSql(schema: string): string {
  return `SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DISCARD TEMP; DISCARD SEQUENCES; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); SET search_path TO ${quoteIdent(schema)}`;
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
