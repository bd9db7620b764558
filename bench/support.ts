import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { quoteIdent } from '../src/core/sql/quote.js';
import { withClient } from '../src/postgres/connect.js';
import type { EmbeddedServer } from '../src/postgres/embedded.js';
import { dropDatabase } from '../src/postgres/provision.js';
import { databaseOf } from '../src/postgres/server-url.js';
import { startEmbedded } from '../src/postgres/embedded.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export function corpusDir(): string {
  const dir = resolve(REPO, process.env.FLOTILLA_CORPUS_DIR ?? '../shared/corpus/trigger.dev/migrations');
  if (!existsSync(dir)) {
    console.error(`The trigger.dev corpus is not at ${dir}. Set FLOTILLA_CORPUS_DIR to its migrations directory.`);
    process.exit(2);
  }
  return dir;
}

/** FLOTILLA_BENCH_DATABASE_URL, else FLOTILLA_DATABASE_URL, else an embedded server under .flotilla/bench. */
export async function benchServer(): Promise<{ url: string; label: string; stop: () => Promise<void> }> {
  const url = process.env.FLOTILLA_BENCH_DATABASE_URL || process.env.FLOTILLA_DATABASE_URL;
  if (url) return { url, label: 'configured server', stop: async () => undefined };
  const embedded: EmbeddedServer = await startEmbedded(resolve(REPO, '.flotilla/bench-postgres'));
  return { url: embedded.url, label: 'embedded PostgreSQL 15', stop: () => embedded.stop() };
}

export function requireTool(name: string): void {
  if (spawnSync(name, ['--version']).status !== 0) {
    console.error(`${name} is not installed. On Debian: apt-get install postgresql-client-15.`);
    process.exit(2);
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The load averages (1, 5, 15 min), as a bench prints them beside its figures. */
export function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
}

/** A short session on the database a URL names. */
export function withPg<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(url, databaseOf(url) ?? 'postgres', fn);
}

/**
 * Drops what a bench made: the databases `databases` finds, then the roles its
 * control database recorded (a schema tenant's role belongs to the server,
 * so it outlives the databases).
 */
export async function dropBenchStorage(adminUrl: string, controlUrl: string, databases: (admin: pg.Client) => Promise<string[]>): Promise<void> {
  const roles = await withPg(controlUrl, async (c) => (await c.query<{ name: string }>(`SELECT name FROM flotilla.storage WHERE kind = 'role'`)).rows.map((r) => r.name)).catch(
    () => [] as string[],
  );
  await withPg(adminUrl, async (c) => {
    for (const db of await databases(c)) await dropDatabase(c, db);
    for (let i = 0; i < roles.length; i += 500)
      await c.query(
        `DROP ROLE IF EXISTS ${roles
          .slice(i, i + 500)
          .map(quoteIdent)
          .join(', ')}`,
      );
  });
}
