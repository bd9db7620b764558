import pg from 'pg';
import { withDatabase } from '../../src/postgres/server-url.js';

/** Counts, every 50 ms, the sessions pg_stat_activity shows for these application_names: the most seen at once. */
export async function sampleSessions(serverUrl: string, applicationNames: readonly string[]): Promise<{ stop(): Promise<{ max: number; samples: number }> }> {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') });
  await client.connect();
  let running = true;
  let max = 0;
  let samples = 0;
  const loop = (async () => {
    while (running) {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ANY($1)', [applicationNames]);
      max = Math.max(max, rows[0]!.n);
      samples++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await client.end();
      return { max, samples };
    },
  };
}
