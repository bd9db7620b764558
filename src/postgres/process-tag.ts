import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * A short name for this process among every machine's (`<host hash>:<pid>`),
 * set as the application name of its control-database sessions. While any of
 * them is connected, the process is alive: its commands are never taken for dead
 * because one of its sessions broke. Short, since PostgreSQL cuts application
 * names at 63 bytes.
 */
export function processTag(pid = process.pid, host = hostname()): string {
  return `${hostTag(host)}:${pid}`;
}

/** This machine, as recorded with the files it writes (dumps): only it can remove them. */
export function hostTag(host = hostname()): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}
