import type pg from 'pg';
import { quoteIdent } from '../core/sql/quote.js';
import { withClient } from './connect.js';

/** Runs `fn` on a new session of the database whose unqualified names reach `schema`. */
export function withSearchPath<T>(serverUrl: string, database: string, schema: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(serverUrl, database, async (client) => {
    await client.query(`SELECT set_config('search_path', $1, false)`, [quoteIdent(schema)]);
    return fn(client);
  });
}
