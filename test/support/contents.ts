import { withClient } from '../../src/postgres/connect.js';
import { serverUrl } from './project.js';

/**
 * The full contents of every table in every schema of the given databases:
 * `database:schema.table` → row count and an MD5 of all its rows in order. Two
 * equal results mean byte-for-byte equal data.
 */
export async function contents(databases: readonly string[], options: { skipSchemas?: (database: string, schema: string) => boolean } = {}): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const database of databases) {
    await withClient(serverUrl(), database, async (client) => {
      const { rows } = await client.query<{ schema: string; table: string }>(
        `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2`,
      );
      for (const { schema, table } of rows) {
        if (options.skipSchemas?.(database, schema)) continue;
        const q = `"${schema.replaceAll('"', '""')}"."${table.replaceAll('"', '""')}"`;
        const { rows: data } = await client.query<{ n: string; h: string | null }>(`SELECT count(*) AS n, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS h FROM ${q} t`);
        result[`${database}:${schema}.${table}`] = `${data[0]!.n}:${data[0]!.h ?? ''}`;
      }
    });
  }
  return result;
}

/** Every database on the test server whose name starts with the prefix. */
export async function databasesWith(prefix: string): Promise<string[]> {
  return withClient(serverUrl(), 'postgres', async (admin) =>
    (await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1`, [prefix])).rows.map((r) => r.datname),
  );
}
