/**
 * A process using the embedded server of the directory given as its argument,
 * driven line by line on stdin: `query` runs a query and prints `ok`, `release`
 * lets go of the server and ends (by itself: nothing may keep the process alive).
 */
import { createInterface } from 'node:readline';
import { withClient } from '../../src/postgres/connect.js';
import { startEmbedded } from '../../src/postgres/embedded.js';

const server = await startEmbedded(process.argv[2]!);
console.log(`ready ${process.pid}`);
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line === 'query') console.log(`ok ${await withClient(server.url, 'postgres', async (c) => (await c.query('SELECT 1 AS one')).rows[0].one)}`);
  if (line === 'release') {
    await server.release();
    console.log('released');
    lines.close();
  }
}
