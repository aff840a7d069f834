// The agent's local API: HTTP/1.1 over a unix socket `<run-dir>/weft.sock`,
// mode 0600 (root only, like the kernel state it changes). A route table maps
// "METHOD /path" to a handler taking the parsed JSON body; failures become
// `{"error":{"code","message","details"}}` with the WeftError code, so the
// CLI, the CNI plugin and the Docker plugin all get the same stable codes.
//
// Every door here gets hostile input, so: the request target is parsed
// without throwing (`GET //[` once killed the agent); one guard around every
// request turns any exception into a 500 reply and a log line; a wrong method
// on a known path is 405; the body is bounded by MAX_BODY, the same limit the
// CNI relay checks before it sends (cni-plugin/relay/weft-cni.c). The socket
// is bound inside a fresh 0700 directory, made 0600, and only then renamed to
// its public name, so no other user can connect during start-up whatever the
// umask (the umask is process-wide, so changing it around listen() would race
// with every other file the agent creates).

import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { statSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
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

/** Largest request body; must equal MAX_BODY in cni-plugin/relay/weft-cni.c (a test checks). */
export const MAX_BODY = 4 << 20;

class TooLarge extends WeftError {
  constructor() {
    super('INVALID_ARGUMENT', `request body larger than ${MAX_BODY} bytes`, { limit: MAX_BODY });
  }
}

/** The JSON body (undefined when empty); INVALID_ARGUMENT when too large or not JSON. Shared with the Docker plugin's socket. */
export async function readBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new TooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new TooLarge();
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

function send(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Serialised before the head is written: a value JSON cannot hold still gets a clean 500.
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
}

/** Path and query of a request target; undefined when it is not one (never throws). */
export function parseTarget(target: string | undefined): { path: string; query: URLSearchParams } | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined;
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  return { path, query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)) };
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

function errorReply(res: ServerResponse, e: unknown, path: string, log: Logger): void {
  const err = isWeftError(e) ? e : new WeftError('INTERNAL', e instanceof Error ? e.message : String(e));
  if (err.code === 'INTERNAL') log.error({ err: e instanceof Error ? e.stack : String(e), path }, 'API call failed');
  send(res, e instanceof TooLarge ? 413 : HTTP_STATUS[err.code], { error: { code: err.code, message: err.message, details: err.details } });
}

/** Serves one request; every exception, however thrown, ends as an error reply. */
async function serve(req: IncomingMessage, res: ServerResponse, routes: Routes): Promise<void> {
  const target = parseTarget(req.url);
  const method = req.method ?? 'GET';
  if (target === undefined) {
    send(res, 400, { error: { code: 'INVALID_ARGUMENT', message: `malformed request target ${JSON.stringify(String(req.url).slice(0, 200))}` } });
    return;
  }
  const handler = routes[`${method} ${target.path}`];
  if (handler === undefined) {
    const allowed = Object.keys(routes)
      .filter((k) => k.slice(k.indexOf(' ') + 1) === target.path)
      .map((k) => k.slice(0, k.indexOf(' ')));
    if (allowed.length > 0) {
      send(res, 405, { error: { code: 'INVALID_ARGUMENT', message: `${method} is not allowed on ${target.path}; use ${allowed.join(' or ')}` } }, { allow: allowed.join(', ') });
    } else {
      send(res, 404, { error: { code: 'NOT_FOUND', message: `no such API call: ${method} ${target.path.slice(0, 200)}` } });
    }
    return;
  }
  const value = await handler(await readBody(req), target.query);
  if (value instanceof RawReply) res.writeHead(200, { 'content-type': 'application/octet-stream', ...value.headers }).end(value.body);
  else send(res, 200, value ?? {});
}

export async function startApiServer(socketPath: string, routes: Routes, log: Logger): Promise<Server> {
  // serve() is async, so whatever it throws arrives here; the path is worked out only for the log.
  const server = createServer((req, res) => {
    serve(req, res, routes).catch((e: unknown) => errorReply(res, e, parseTarget(req.url)?.path ?? '?', log));
  });
  await listenUnix(server, socketPath, 'give this agent its own --run-dir');
  log.info({ socket: socketPath }, 'API listening');
  return server;
}

/**
 * Serves `server` on a unix socket, mode 0600 (see the header): refuses
 * (CONFLICT) when a live process serves the path, replaces a stale socket a
 * killed agent left, removes it on close. Also bounds how long a client may
 * take to send its request, so a slow client holds only its own connection.
 * Shared with the Docker plugin's socket.
 */
export async function listenUnix(server: Server, socketPath: string, otherwise: string): Promise<void> {
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  // A client that sends garbage gets 400 from Node's parser; nothing reaches a handler.
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  const dir = dirname(socketPath);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (await socketAnswers(socketPath)) {
    throw new WeftError('CONFLICT', `another weft agent is serving ${socketPath}: stop it, or ${otherwise}`, { socket: socketPath });
  }
  // Private directories of an agent killed during start-up (no live agent serves this run dir).
  for (const name of await readdir(dir)) if (name.startsWith('.weft-')) await rm(join(dir, name), { recursive: true, force: true });
  // mkdtemp makes the directory 0700 whatever the umask: the socket is born where only root can reach it.
  const privateDir = await mkdtemp(join(dir, '.weft-'));
  const bound = join(privateDir, 's');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bound, () => resolve());
    });
    await chmod(bound, 0o600);
    // Replaces a socket file left by a killed agent in one step (listen() would fail with EADDRINUSE on it).
    await rename(bound, socketPath);
  } catch (e) {
    server.close();
    throw e;
  } finally {
    await rm(privateDir, { recursive: true, force: true });
  }
  const ino = (await stat(socketPath)).ino;
  // libuv unlinks the name it bound (gone after the rename); remove ours, unless a newer agent replaced it.
  server.once('close', () => {
    try {
      if (statSync(socketPath).ino === ino) unlinkSync(socketPath);
    } catch {
      // Already gone.
    }
  });
}
