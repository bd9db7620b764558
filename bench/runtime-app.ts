/**
 * The app bench:runtime puts under load, in a process of its own (so that the
 * load generator does not share its event loop). Plain node:http, one route,
 * `GET /items/<id>`, answering `{"slug", "label"}` from one indexed query:
 *   BENCH_APP=tenant: the tenant named by X-Tenant-ID, through the tenant
 *     runtime (admit, within, db.query), on the control database BENCH_URL;
 *   BENCH_APP=plain: one pg.Pool on the database BENCH_URL, no tenancy.
 * Both hold at most BENCH_BUDGET connections, named BENCH_APP_NAME. Prints
 * `{"port": n}` once listening; `GET /stats` answers the runtime's stats.
 * SIGTERM closes everything and exits (which also writes a --cpu-prof profile).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { answerFor } from '../src/runtime/answer.js';
import { nodeRequestInfo } from '../src/runtime/node-request.js';
import { createRuntime } from '../src/runtime/runtime.js';

const QUERY = 'SELECT w.slug, i.label FROM items i JOIN who w ON w.id = i.who_id WHERE i.id = $1';
const kind = process.env.BENCH_APP;
const url = process.env.BENCH_URL!;
const budget = Number(process.env.BENCH_BUDGET);
const applicationName = process.env.BENCH_APP_NAME!;

type Row = { slug: string; label: string };
type Query = (req: IncomingMessage, id: number) => Promise<Row | undefined>;

let query: Query;
let stats: () => unknown = () => ({});
let close: () => Promise<void>;

if (kind === 'tenant') {
  // A header-resolved app names only the header: no lookup of the Host as a custom domain.
  const runtime = await createRuntime({ databaseUrl: url, applicationName, budget: { maxConnections: budget }, resolve: { order: ['header'] } });
  query = async (req, id) => {
    const { tenant } = await runtime.admit(nodeRequestInfo(req, req.url ?? '/'));
    return runtime.within(tenant, async () => (await runtime.db.query<Row>(QUERY, [id])).rows[0]);
  };
  stats = () => runtime.stats();
  close = () => runtime.close();
} else if (kind === 'plain') {
  const pool = new pg.Pool({ connectionString: url, max: budget, application_name: applicationName });
  query = async (_req, id) => (await pool.query<Row>(QUERY, [id])).rows[0];
  close = () => pool.end();
} else {
  throw new Error(`BENCH_APP must be tenant or plain, not ${kind}`);
}

const server = createServer((req, res) => {
  if (req.url === '/stats') return send(res, 200, stats());
  const id = Number(req.url?.startsWith('/items/') ? req.url.slice('/items/'.length) : Number.NaN);
  if (!Number.isInteger(id)) return send(res, 404, { error: 'no such route' });
  query(req, id).then(
    (row) => (row ? send(res, 200, row) : send(res, 404, { error: 'no such item' })),
    (error: unknown) => {
      const answer = answerFor(error);
      res.writeHead(answer.status, answer.headers).end(JSON.stringify(answer.body));
    },
  );
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }));
});

process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  close().finally(() => process.exit(0));
});

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
