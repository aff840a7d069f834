// The agent's local API: HTTP/1.1 over a unix socket `<run-dir>/weft.sock`,
// mode 0600 (root only, like the kernel state it changes). A route table maps
// "METHOD /path" to a handler taking the parsed JSON body; failures become
// `{"error":{"code","message","details"}}` with the WeftError code, so the
// CLI, the CNI plugin and the Docker plugin all get the same stable codes.

import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { WeftError, isWeftError, type WeftErrorCode } from '../../ipam/errors.js';

export type Handler = (body: unknown, query: URLSearchParams) => Promise<unknown>;

/** A reply sent as it is (not as JSON), with extra headers: the CNI relay prints the body verbatim. */
export class RawReply {
  constructor(
    readonly body: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {}
}
export type Routes = Readonly<Record<string, Handler>>;

const HTTP_STATUS: Readonly<Record<WeftErrorCode, number>> = {
  INVALID_CONFIG: 400,
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  EXHAUSTED: 507,
  UNAVAILABLE: 503,
  KERNEL: 500,
  INTERNAL: 500,
};

export const MAX_BODY = 1 << 20;

/** The JSON body (undefined when empty); INVALID_ARGUMENT when too large or not JSON. Shared with the Docker plugin's socket. */
export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new WeftError('INVALID_ARGUMENT', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new WeftError('INVALID_ARGUMENT', `request body is not JSON: ${(e as Error).message}`);
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value) + '\n');
}

/** Whether something accepts connections on this unix socket (a live agent), within a second. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    const done = (live: boolean): void => {
      c.destroy();
      resolve(live);
    };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    c.setTimeout(1000, () => done(false));
  });
}

export async function startApiServer(socketPath: string, routes: Routes, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://weft');
    const handler = routes[`${req.method ?? 'GET'} ${url.pathname}`];
    if (handler === undefined) {
      send(res, 404, { error: { code: 'NOT_FOUND', message: `no such API call: ${req.method} ${url.pathname}` } });
      return;
    }
    readBody(req)
      .then((body) => handler(body, url.searchParams))
      .then(
        (value) => {
          if (value instanceof RawReply) res.writeHead(200, { 'content-type': 'application/octet-stream', ...value.headers }).end(value.body);
          else send(res, 200, value ?? {});
        },
        (e: unknown) => {
          const err = isWeftError(e) ? e : new WeftError('INTERNAL', (e as Error).message ?? String(e));
          if (err.code === 'INTERNAL') log.error({ err: (e as Error).stack, path: url.pathname }, 'API call failed');
          send(res, HTTP_STATUS[err.code], { error: { code: err.code, message: err.message, details: err.details } });
        },
      );
  });
  await listenUnix(server, socketPath, 'give this agent its own --run-dir');
  log.info({ socket: socketPath }, 'API listening');
  return server;
}

/**
 * Listens on a unix socket, mode 0600: refuses (CONFLICT) when a live process
 * serves it, replaces a stale file a killed agent left. Also bounds how long a
 * client may take to send its request, so a slow client holds only its own socket.
 */
export async function listenUnix(server: Server, socketPath: string, otherwise: string): Promise<void> {
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  if (await socketAnswers(socketPath)) {
    throw new WeftError('CONFLICT', `another weft agent is serving ${socketPath}: stop it, or ${otherwise}`, { socket: socketPath });
  }
  // A socket file left by a killed agent would make listen() fail with EADDRINUSE.
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
}
