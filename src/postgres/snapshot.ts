import type pg from 'pg';

/**
 * Opens a read-only repeatable-read transaction and exports its snapshot, so
 * that pg_dump (given the id) and this session's own reads see the same data.
 */
export async function exportSnapshot(client: pg.ClientBase): Promise<string> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  return (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]!.id;
}

/** Ends the transaction whose snapshot was exported. */
export async function endSnapshot(client: pg.ClientBase): Promise<void> {
  await client.query('COMMIT');
}

/** The sessions connected to a database (count and application names), or null when there are none. */
export async function sessionsOn(admin: pg.ClientBase, database: string): Promise<{ n: number | string; apps: string } | null> {
  const { rows } = await admin.query<{ n: number; apps: string | null }>(
    `SELECT count(*)::int AS n, string_agg(DISTINCT coalesce(nullif(application_name, ''), 'unnamed'), ', ') AS apps FROM pg_stat_activity WHERE datname = $1`,
    [database],
  );
  const found = rows[0];
  return found && found.n > 0 ? { n: found.n, apps: found.apps ?? 'unknown' } : null;
}
