// Forwarding the names that are not ours to the host's upstream resolvers
// (`/etc/resolv.conf`'s nameservers, or --dns-upstream), with a deadline:
// the server answers SERVFAIL when this gives up. Upstreams are tried in
// order, each for its share of the deadline. Over UDP one socket per address
// family carries every query under a fresh random ID, and a reply is taken
// only from the upstream asked, with that ID and the same question (so a
// spoofed or late datagram cannot answer another query). Queries that came
// over TCP go upstream over TCP. In-flight queries are bounded.

import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import { WeftError } from '../../ipam/errors.js';

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

/** The nameserver addresses of a resolv.conf text, in order. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIP(m[1]!.split('%')[0]!) !== 0) out.push(m[1]!.split('%')[0]!);
  }
  return out;
}

/** "1.2.3.4", "1.2.3.4:5353", "::1" or "[::1]:5353". */
export function parseUpstream(s: string): Upstream {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  let host: string;
  let port = '53';
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2] ?? '53';
  } else if (isIP(s) !== 0) {
    host = s;
  } else {
    const i = s.lastIndexOf(':');
    host = i > 0 ? s.slice(0, i) : s;
    port = i > 0 ? s.slice(i + 1) : '53';
  }
  const p = Number(port);
  if (isIP(host) === 0 || !/^\d+$/.test(port) || p < 1 || p > 65535) {
    throw new WeftError('INVALID_ARGUMENT', `--dns-upstream: "${s}" is not ADDRESS or ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)`, { flag: 'dns-upstream', value: s });
  }
  return { host, port: p };
}

export interface ForwarderOptions {
  readonly upstreams: () => readonly Upstream[];
  readonly timeoutMs: number;
  readonly maxPending?: number;
}

interface Pending {
  readonly upstream: Upstream;
  readonly question: Buffer;
  readonly resolve: (b: Buffer | undefined) => void;
}

/** The question section's bytes (name, type, class) of a message with one question; undefined when malformed. */
function questionBytes(msg: Buffer): Buffer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  let off = 12;
  while (off < msg.length) {
    const len = msg[off]!;
    if (len === 0) break;
    if ((len & 0xc0) !== 0) return undefined;
    off += len + 1;
  }
  if (off + 5 > msg.length) return undefined;
  // Lower case: a resolver may answer with the case it prefers (0x20 randomisation aside, names compare without case).
  return Buffer.from(msg.subarray(12, off + 5).toString('latin1').toLowerCase(), 'latin1');
}

export class Forwarder {
  private readonly sockets = new Map<4 | 6, Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly max: number;
  counters = { sent: 0, answered: 0, timeouts: 0, refusedBusy: 0 };

  constructor(private readonly o: ForwarderOptions) {
    this.max = o.maxPending ?? 512;
  }

  private socket(family: 4 | 6): Socket {
    let s = this.sockets.get(family);
    if (s === undefined) {
      s = createSocket(family === 4 ? 'udp4' : 'udp6');
      s.on('message', (msg, rinfo) => this.onReply(msg, rinfo.address, rinfo.port));
      s.on('error', () => undefined);
      s.unref();
      this.sockets.set(family, s);
    }
    return s;
  }

  private onReply(msg: Buffer, address: string, port: number): void {
    if (msg.length < 12 || (msg.readUInt16BE(2) & 0x8000) === 0) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (p === undefined || p.upstream.host !== address || p.upstream.port !== port) return;
    const q = questionBytes(msg);
    if (q === undefined || !q.equals(p.question)) return;
    this.pending.delete(id);
    this.counters.answered++;
    p.resolve(msg);
  }

  private freeId(): number | undefined {
    for (let i = 0; i < 16; i++) {
      const id = randomInt(0, 65536);
      if (!this.pending.has(id)) return id;
    }
    return undefined;
  }

  /** The upstream's reply (with the query's own ID), or undefined when none answered in time. */
  async udp(query: Buffer): Promise<Buffer | undefined> {
    const ups = this.o.upstreams();
    const question = questionBytes(query);
    if (ups.length === 0 || question === undefined) return undefined;
    if (this.pending.size >= this.max) {
      this.counters.refusedBusy++;
      return undefined;
    }
    const clientId = query.readUInt16BE(0);
    const share = Math.max(50, Math.floor(this.o.timeoutMs / ups.length));
    for (const up of ups) {
      const id = this.freeId();
      if (id === undefined) return undefined;
      const out = Buffer.from(query);
      out.writeUInt16BE(id, 0);
      const answer = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          this.counters.timeouts++;
          resolve(undefined);
        }, share);
        this.pending.set(id, {
          upstream: up,
          question,
          resolve: (b) => {
            clearTimeout(timer);
            resolve(b);
          },
        });
        this.counters.sent++;
        this.socket(isIP(up.host) === 6 ? 6 : 4).send(out, up.port, up.host, (err) => {
          if (err && this.pending.get(id)) {
            this.pending.get(id)!.resolve(undefined);
            this.pending.delete(id);
          }
        });
      });
      if (answer !== undefined) {
        answer.writeUInt16BE(clientId, 0);
        return answer;
      }
    }
    return undefined;
  }

  /** The same over TCP (one connection per query, length-prefixed). */
  async tcp(query: Buffer): Promise<Buffer | undefined> {
    const ups = this.o.upstreams();
    if (ups.length === 0) return undefined;
    const share = Math.max(50, Math.floor(this.o.timeoutMs / ups.length));
    for (const up of ups) {
      const answer = await tcpExchange(up, query, share);
      if (answer !== undefined && answer.length >= 12 && answer.readUInt16BE(0) === query.readUInt16BE(0)) return answer;
    }
    return undefined;
  }

  close(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    for (const p of this.pending.values()) p.resolve(undefined);
    this.pending.clear();
  }
}

function tcpExchange(up: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const c = connect({ host: up.host, port: up.port });
    let buf = Buffer.alloc(0);
    const done = (b: Buffer | undefined): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(b);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    c.on('error', () => done(undefined));
    c.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      c.write(Buffer.concat([len, query]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    c.on('end', () => done(undefined));
  });
}
