// The gossip sockets on loopback (no lab needed): a push-pull round trip
// between two transports with one key in common (rotation), a transport with
// another key refused on both sides, and a peer that accepts a connection
// but never answers: push-pull gives up at its deadline instead of stalling.

import { connect, createServer, type Server } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { gossipKeys } from '../../agent/components/gossip.js';
import type { PushPullState } from '../../agent/gossip/messages.js';
import { NetTransport } from '../../agent/gossip/net-transport.js';
import { encodeState } from '../../agent/gossip/codec.js';
import { seal } from '../../agent/gossip/seal.js';
import { generateKey, parseKeyFile } from '../../ipam/keys.js';
import { freePort } from '../lab/index.js';

const log = pino({ level: 'silent' });
const [k1, k2, k3] = [generateKey(), generateKey(), generateKey()];
const state = (from: string): PushPullState => ({ from, join: true, members: [{ id: from, addr: from, port: 1, state: 'alive', inc: 1 }], user: new Uint8Array([1, 2]) });

describe('gossip transport on loopback', () => {
  const open: { close(): void }[] = [];
  afterEach(() => { for (const t of open.splice(0)) t.close(); });

  async function transport(keys: string, timeoutMs = 5000): Promise<{ t: NetTransport; port: number }> {
    const port = await freePort();
    const t = new NetTransport({ bindAddr: '127.0.0.1', port, keys: () => gossipKeys(parseKeyFile(keys)), log, timeoutMs });
    await t.listen();
    open.push(t);
    return { t, port };
  }

  it('mid-rotation (one host seals with the old key, one with the new, both open both): push-pull and datagrams both ways', async () => {
    const a = await transport(`${k1}\n${k2}\n`);
    const b = await transport(`${k2}\n${k1}\n`);
    let got: PushPullState | undefined;
    b.t.onPushPull = (s) => { got = s; return state('127.0.0.3'); };
    const answer = await a.t.pushPull({ addr: '127.0.0.1', port: b.port }, state('127.0.0.2'));
    expect(answer.from).toBe('127.0.0.3');
    expect(got?.from).toBe('127.0.0.2');
    const seen: string[] = [];
    a.t.onPacket = (p) => seen.push(p.from);
    b.t.onPacket = (p) => seen.push(p.from);
    a.t.sendPacket({ addr: '127.0.0.1', port: b.port }, { from: '127.0.0.2', msgs: [{ t: 'ack', seq: 1 }] });
    b.t.sendPacket({ addr: '127.0.0.1', port: a.port }, { from: '127.0.0.3', msgs: [{ t: 'ack', seq: 2 }] });
    for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen.sort()).toEqual(['127.0.0.2', '127.0.0.3']);
    expect(a.t.counters.dropped).toEqual(b.t.counters.dropped);
    expect(Object.values(a.t.counters.dropped).every((n) => n === 0)).toBe(true);
  });

  it('another key: push-pull refused on both sides, nothing merged', async () => {
    const a = await transport(`${k1}\n`);
    const c = await transport(`${k3}\n`);
    let called = false;
    c.t.onPushPull = (s) => { called = true; return s; };
    await expect(a.t.pushPull({ addr: '127.0.0.1', port: c.port }, state('127.0.0.2'))).rejects.toThrow();
    expect(called).toBe(false);
    expect(c.t.counters.dropped.unknownKey).toBe(1);
  });

  it('a taken port or an address not on this host: a clear error naming the fix', async () => {
    const a = await transport(`${k1}\n`);
    const again = new NetTransport({ bindAddr: '127.0.0.1', port: a.port, keys: () => [], log });
    await expect(again.listen()).rejects.toThrow(/EADDRINUSE.*--gossip-port/);
    const elsewhere = new NetTransport({ bindAddr: '192.0.2.77', port: a.port, keys: () => [], log });
    await expect(elsewhere.listen()).rejects.toThrow(/EADDRNOTAVAIL.*not an address of this host/);
  });

  it('a peer that resets the connection while we answer does not crash us; the next push-pull works', async () => {
    const b = await transport(`${k1}\n`);
    const big: PushPullState = { ...state('127.0.0.3'), user: new Uint8Array(8 << 20) };
    b.t.onPushPull = () => big;
    const keys = gossipKeys(parseKeyFile(`${k1}\n`));
    const sealed = seal(keys, 'stream', encodeState(state('127.0.0.2')));
    const frame = Buffer.alloc(4 + sealed.length);
    frame.writeUInt32BE(sealed.length);
    sealed.copy(frame, 4);
    await new Promise<void>((resolve) => {
      const c = connect({ host: '127.0.0.1', port: b.port }, () => c.write(frame));
      c.once('data', () => { c.resetAndDestroy(); resolve(); });
      c.on('error', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 200));
    const a = await transport(`${k1}\n`);
    b.t.onPushPull = () => state('127.0.0.3');
    expect((await a.t.pushPull({ addr: '127.0.0.1', port: b.port }, state('127.0.0.2'))).from).toBe('127.0.0.3');
  });

  it('a peer that never answers: push-pull fails at its deadline', async () => {
    const a = await transport(`${k1}\n`, 300);
    const port = await freePort();
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(port, '127.0.0.1', r));
    open.push({ close: () => silent.close() });
    await expect(a.t.pushPull({ addr: '127.0.0.1', port }, state('127.0.0.2'))).rejects.toThrow(/timeout/);
  });
});
