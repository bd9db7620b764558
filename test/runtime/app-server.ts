import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RuntimeOptions } from '../../src/runtime/index.js';
import { createRuntime } from '../../src/runtime/index.js';
import { whoApp } from './support-app.js';

/**
 * The app as its own process (started by support-process.ts): the runtime
 * from FLOTILLA_DATABASE_URL and the options in FLOTILLA_TEST_RUNTIME (JSON).
 * Prints `{"port": n}` once it listens; exits when its stdin closes (the test
 * process ended) or on SIGTERM.
 */
const options = JSON.parse(process.env.FLOTILLA_TEST_RUNTIME ?? '{}') as RuntimeOptions;
const runtime = await createRuntime(options);
const server = createServer(whoApp(runtime));
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  server.close();
  void runtime.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
