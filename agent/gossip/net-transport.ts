// The gossip sockets: UDP for probes and piggybacked news, TCP for push-pull
// of full state, both bound to the public IP only. Every datagram and every
// frame is sealed (seal.ts) with the first gossip key and opened with any;
// anything that fails to open or decode is dropped, counted by reason and
// logged at a limited rate, never thrown into the agent. TCP frames are
// length-prefixed (u32) and bounded, and every connection has a deadline, so
// a slow or hostile peer can hold neither memory nor the agent.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { WeftError } from '../../ipam/errors.js';
import { decodePacket, decodeState, encodePacket, encodeState } from './codec.js';
import type { Endpoint, Packet, PushPullState } from './messages.js';
import { RateLimitedLog } from './rate-log.js';
import { open, seal, type SealKey, type SealKind } from './seal.js';
import type { SwimTransport } from './swim.js';
import { whenBound } from '../bound.js';

export interface NetTransportOptions {
  bindAddr: string;
  port: number;
  /** Current gossip keys (derived); empty until the key source has answered: then nothing is sent or accepted. */
  keys: () => readonly SealKey[];
  log: Logger;
  /** Largest push-pull frame accepted (bytes after the length prefix). */
  maxFrameBytes?: number;
  /** Deadline of one push-pull exchange, either side. */
  timeoutMs?: number;
  maxConnections?: number;
}

export interface TransportCounters {
  packetsIn: number;
  packetsOut: number;
  dropped: { auth: number; unknownKey: number; malformed: number; noKeys: number; oversize: number };
  streamsIn: number;
  streamsRefused: number;
}

function bindError(proto: string, addr: string, port: number, e: NodeJS.ErrnoException): WeftError {
  const hint = e.code === 'EADDRNOTAVAIL'
    ? `${addr} is not an address of this host (gossip binds to the public IP only; check --public-ip / --iface)`
    : 'free the port or choose another with --gossip-port';
  return new WeftError('UNAVAILABLE', `gossip: cannot bind ${proto} ${addr}:${port} (${e.code ?? e.message}); ${hint}`, { port, addr });
}

export class NetTransport implements SwimTransport {
  onPacket: (p: Packet) => void = () => {};
  onPushPull: (s: PushPullState) => PushPullState = () => { throw new Error('not ready'); };
  readonly counters: TransportCounters = { packetsIn: 0, packetsOut: 0, dropped: { auth: 0, unknownKey: 0, malformed: 0, noKeys: 0, oversize: 0 }, streamsIn: 0, streamsRefused: 0 };
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly rl: RateLimitedLog;
  private readonly maxFrame: number;
  private readonly timeoutMs: number;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: NetTransportOptions) {
    this.rl = new RateLimitedLog(o.log);
    this.maxFrame = o.maxFrameBytes ?? 16 << 20;
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  async listen(): Promise<void> {
    const family = isIPv6(this.o.bindAddr) ? 'udp6' : 'udp4';
    const udp = createSocket({ type: family });
    udp.on('message', (b, rinfo) => this.onDatagram(b, rinfo.address));
    udp.on('error', (e) => this.o.log.error({ err: e.message }, 'gossip UDP socket error'));
    await whenBound(udp, (done) => udp.bind(this.o.port, this.o.bindAddr, done)).catch((e: NodeJS.ErrnoException) => {
      udp.close();
      throw bindError('UDP', this.o.bindAddr, this.o.port, e);
    });
    this.udp = udp;
    const tcp = createServer((s) => this.onConnection(s));
    tcp.maxConnections = this.o.maxConnections ?? 32;
    tcp.on('drop', () => this.counters.streamsRefused++);
    await whenBound(tcp, (done) => tcp.listen(this.o.port, this.o.bindAddr, done)).catch((e: NodeJS.ErrnoException) => {
      udp.close();
      throw bindError('TCP', this.o.bindAddr, this.o.port, e);
    });
    this.tcp = tcp;
  }

  close(): void {
    this.udp?.close();
    this.tcp?.close();
    for (const s of this.sockets) s.destroy();
  }

  sendPacket(to: Endpoint, packet: Packet): void {
    const keys = this.o.keys();
    if (keys.length === 0 || this.udp === undefined) return;
    const sealed = seal(keys, 'packet', encodePacket(packet));
    this.counters.packetsOut++;
    this.udp.send(sealed, to.port, to.addr, (e) => {
      if (e) this.rl.warn('send', { to: `${to.addr}:${to.port}`, err: e.message }, 'gossip datagram not sent');
    });
  }

  /** Opens sealed bytes of `kind`, counting and logging (rate-limited) why not; undefined when dropped. */
  private unseal(kind: SealKind, b: Uint8Array, from: string): Buffer | undefined {
    const keys = this.o.keys();
    if (keys.length === 0) { this.counters.dropped.noKeys++; return undefined; }
    const r = open(keys, kind, b);
    if (r.ok) return r.plain;
    const reason = r.why === 'auth' ? 'auth' : r.why === 'unknown-key' ? 'unknownKey' : 'malformed';
    this.counters.dropped[reason]++;
    this.rl.warn(reason, { from, kind }, r.why === 'malformed' ? 'gossip: dropped malformed input' : 'gossip: dropped input that failed authentication (a peer with another key?)');
    return undefined;
  }

  private onDatagram(b: Buffer, from: string): void {
    const plain = this.unseal('packet', b, from);
    if (plain === undefined) return;
    let p: Packet;
    try {
      p = decodePacket(plain);
    } catch (e) {
      this.counters.dropped.malformed++;
      this.rl.warn('malformed', { from, err: (e as Error).message }, 'gossip: dropped a malformed datagram');
      return;
    }
    this.counters.packetsIn++;
    try { this.onPacket(p); } catch (e) { this.o.log.error({ err: (e as Error).message, from }, 'gossip: handling a datagram failed'); }
  }

  private onConnection(s: Socket): void {
    this.counters.streamsIn++;
    const from = s.remoteAddress ?? '?';
    // Always listened to: a peer resetting the connection while we answer is its problem, never a crash.
    s.on('error', (e) => this.rl.warn('stream', { from, err: e.message }, 'gossip: push-pull connection error'));
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    readFrame(s, this.maxFrame, this.timeoutMs).then(
      (frame) => {
        const plain = this.unseal('stream', frame, from);
        if (plain === undefined) return s.destroy();
        let remote: PushPullState;
        try {
          remote = decodeState(plain);
        } catch (e) {
          this.counters.dropped.malformed++;
          this.rl.warn('malformed', { from, err: (e as Error).message }, 'gossip: dropped a malformed push-pull state');
          return s.destroy();
        }
        const keys = this.o.keys();
        const reply = seal(keys, 'stream', encodeState(this.onPushPull(remote)));
        s.end(frameOf(reply));
      },
      (e: Error) => {
        if (e.message.startsWith('frame of')) this.counters.dropped.oversize++;
        this.rl.warn('stream', { from, err: e.message }, 'gossip: push-pull connection dropped');
        s.destroy();
      },
    ).catch((e: unknown) => {
      this.o.log.error({ err: (e as Error).message, from }, 'gossip: answering a push-pull failed');
      s.destroy();
    });
  }

  async pushPull(to: Endpoint, local: PushPullState): Promise<PushPullState> {
    const keys = this.o.keys();
    if (keys.length === 0) throw new WeftError('UNAVAILABLE', 'gossip keys not known yet');
    const s = connect({ host: to.addr, port: to.port, localAddress: this.o.bindAddr });
    s.on('error', () => {}); // failures reject below (connect, readFrame); a late reset must not crash the agent
    this.sockets.add(s);
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('connect timeout')), this.timeoutMs);
        s.once('connect', () => { clearTimeout(t); resolve(); });
        s.once('error', (e) => { clearTimeout(t); reject(e); });
      });
      s.write(frameOf(seal(keys, 'stream', encodeState(local))));
      const frame = await readFrame(s, this.maxFrame, this.timeoutMs);
      const plain = this.unseal('stream', frame, to.addr);
      if (plain === undefined) throw new WeftError('UNAVAILABLE', `push-pull answer from ${to.addr} failed authentication`);
      return decodeState(plain);
    } finally {
      s.destroy();
      this.sockets.delete(s);
    }
  }
}

function frameOf(b: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(b.length);
  return Buffer.concat([h, b]);
}

/** One length-prefixed frame from `s`, bounded in size and time. */
function readFrame(s: Socket, max: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let want = -1;
    const t = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    const finish = (e?: Error, b?: Buffer): void => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('error', onErr);
      s.off('end', onEnd);
      if (e) reject(e);
      else resolve(b!);
    };
    const onErr = (e: Error): void => finish(e);
    const onEnd = (): void => finish(new Error('closed before a whole frame'));
    const onData = (c: Buffer): void => {
      chunks.push(c);
      have += c.length;
      if (want < 0 && have >= 4) {
        const all = Buffer.concat(chunks);
        want = all.readUInt32BE(0);
        if (want > max) return finish(new Error(`frame of ${want} bytes (max ${max})`));
        chunks.length = 0;
        chunks.push(all);
      }
      if (want >= 0 && have >= 4 + want) finish(undefined, Buffer.concat(chunks).subarray(4, 4 + want));
    };
    s.on('data', onData);
    s.on('error', onErr);
    s.on('end', onEnd);
  });
}
