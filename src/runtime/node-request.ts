import type { IncomingMessage } from 'node:http';
import type { RequestInfo } from './resolution.js';

/** What the resolvers read of a Node request (Express, Fastify, NestJS): `url` is the target as received, or as the router sees it. */
export function nodeRequestInfo(req: IncomingMessage, url: string): RequestInfo {
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  return {
    host: req.headers.host,
    hostCount: hosts,
    url,
    header: (name) => {
      const value = req.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(',') : value;
    },
  };
}
