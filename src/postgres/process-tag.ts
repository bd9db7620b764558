import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Told apart from an earlier process of the same pid on the same host (a container restarted as pid 1). */
const nonce = randomBytes(3).toString('hex');

/**
 * A short name for this process among every machine's (`<host hash>:<pid>:<nonce>`),
 * set as the application name of its control-database sessions. While any of
 * them is connected, the process is alive: its commands are never taken for dead
 * because one of its sessions broke. Short, since PostgreSQL cuts application
 * names at 63 bytes.
 */
export function processTag(): string {
  return `${hostTag()}:${process.pid}:${nonce}`;
}

/** This machine, as recorded with the files it writes (dumps), for the operator to read. */
export function hostTag(host = hostname()): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}
