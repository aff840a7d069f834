// The Docker plugin's socket with hostile and ordinary clients: the reply
// shapes libnetwork reads (404 text, Err vs Error, 400 for a body that is not
// JSON), a huge body and a client that never finishes its request costing
// only their own connection, and the socket gone after close.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../ipam/errors.js';
import { MAX_BODY } from '../../agent/api/server.js';
import { pluginHandlers, startPluginServer } from '../../agent/cnm/server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function post(socketPath: string, path: string, body?: string | Buffer, method = 'POST'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { accept: 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A body larger than the limit, on a raw socket: the server may answer and close while we still write. */
function hugePost(socketPath: string, size: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const c = connect(socketPath);
    let text = '';
    c.on('error', () => undefined);
    c.setEncoding('utf8').on('data', (d: string) => (text += d));
    c.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text }));
    c.write(`POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
    c.end(Buffer.alloc(size, 0x20));
  });
}

async function serve() {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cnm-'));
  dirs.push(dir);
  const socket = join(dir, 'plugins', 'weft.sock');
  const seen: unknown[] = [];
  const handlers = pluginHandlers({
    'NetworkDriver.CreateNetwork': async (b) => {
      seen.push(b);
      return {};
    },
    'NetworkDriver.Join': async () => {
      throw new WeftError('NOT_FOUND', 'endpoint x is unknown to weft');
    },
    'IpamDriver.RequestAddress': async () => {
      throw new WeftError('EXHAUSTED', 'no free address left in 10.42.7.0/24');
    },
    'NetworkDriver.Leave': async () => {
      throw new Error('a bug');
    },
  });
  const s = await startPluginServer(socket, handlers, pino({ level: 'silent' }));
  return { socket, seen, close: () => s.close() };
}

describe('Docker plugin socket', () => {
  it('answers Activate and calls with a newline-terminated body and no Content-Type', async () => {
    const s = await serve();
    try {
      expect(await post(s.socket, '/Plugin.Activate')).toEqual({ status: 200, text: '{"Implements":["NetworkDriver","IpamDriver"]}\n' });
      expect((await post(s.socket, '/NetworkDriver.CreateNetwork', '{"NetworkID":"n1"}\n')).status).toBe(200);
      expect(s.seen).toEqual([{ NetworkID: 'n1' }]);
    } finally {
      await s.close();
    }
  });

  it('404 "404 page not found" for a method it does not implement, or a GET', async () => {
    const s = await serve();
    try {
      expect(await post(s.socket, '/NetworkDriver.AllocateNetwork', '{}')).toEqual({ status: 404, text: '404 page not found\n' });
      expect((await post(s.socket, '/Plugin.Activate', undefined, 'GET')).status).toBe(404);
      expect((await post(s.socket, '/constructor', '{}')).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it('failures: {"Err"} from the NetworkDriver, {"Error"} from the IpamDriver, 400 {"Err"} for malformed JSON', async () => {
    const s = await serve();
    try {
      expect(JSON.parse((await post(s.socket, '/NetworkDriver.Join', '{}')).text)).toEqual({ Err: 'endpoint x is unknown to weft' });
      expect(JSON.parse((await post(s.socket, '/IpamDriver.RequestAddress', '{}')).text)).toEqual({ Error: 'no free address left in 10.42.7.0/24' });
      expect(JSON.parse((await post(s.socket, '/NetworkDriver.Leave', '{}')).text)).toEqual({ Err: 'a bug' });
      const bad = await post(s.socket, '/NetworkDriver.CreateNetwork', '{"NetworkID": ');
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.text)).toMatchObject({ Err: expect.stringMatching(/not JSON/) });
      expect(s.seen).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('a huge body and a client that never finishes cost only their own connection', async () => {
    const s = await serve();
    try {
      const slow = connect(s.socket);
      await new Promise((r) => slow.once('connect', r));
      slow.write('POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"Netw');
      const huge = await hugePost(s.socket, MAX_BODY + (1 << 20));
      // Refused (400) or the connection cut while sending: never accepted.
      expect(huge.status === 400 || huge.status === 0).toBe(true);
      expect((await post(s.socket, '/Plugin.Activate')).status).toBe(200);
      slow.destroy();
      expect(s.seen).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('removes its socket on close, and refuses a socket a live server holds', async () => {
    const s = await serve();
    await expect(startPluginServer(s.socket, pluginHandlers(), pino({ level: 'silent' }))).rejects.toThrow(/another weft agent is serving/);
    await s.close();
    expect(existsSync(s.socket)).toBe(false);
  });
});
