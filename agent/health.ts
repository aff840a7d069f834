// /healthz (the process answers) and /readyz (the lease is held, subnet.env is
// written and the lease set is known) for supervisors and Kubernetes probes.
// A plain node:http server: two fixed routes need no framework.

import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { WeftError } from '../ipam/errors.js';

export interface Readiness {
  /** Empty when ready; otherwise what is still missing, for the operator. */
  notReady(): string[];
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new WeftError('INVALID_ARGUMENT', `--healthz-listen: "${listen}" is not host:port (e.g. 127.0.0.1:8471)`, { flag: 'healthz-listen' });
  }
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
}

export async function startHealthServer(listen: string, readiness: Readiness, log: Logger): Promise<Server> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const missing = readiness.notReady();
      const ready = missing.length === 0;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ready, ...(ready ? {} : { waitingFor: missing }) }) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new WeftError('INVALID_ARGUMENT', `--healthz-listen ${listen}: ${(e as Error).message}`, { flag: 'healthz-listen' })));
    server.listen(port, host, () => resolve());
  });
  log.info({ listen }, 'health endpoints listening');
  return server;
}
