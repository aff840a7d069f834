// The DNS server's sockets: UDP and TCP on each listen address, feeding
// every query to decideQuery (dns-answer.ts) and sending what it decides.
// Only clients the `allowed` test accepts (the overlay network, loopback)
// get answers; anyone else gets REFUSED, so the forwarder never serves the
// underlay. Every handler is wrapped: a query can cost an answer, never the
// process. TCP connections are bounded in number, idle time and buffered
// bytes (RFC 7766's limits, small).
//
// UDP on an IPv4 address, when the reply cache is on, goes through the
// native fast path (native-fastpath.ts): a thread answers repeated queries
// from the cycles this file pushes after deciding them, and hands everything
// else here (onMiss), where it is decided exactly as a dgram datagram would
// be and sent back from the same socket. Any change of the answers
// (invalidate(), or a new generation seen on a miss) empties its table.

import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Cidr } from '../../ipam/types.js';
import { AnswerCache } from './answer-cache.js';
import { decideQuery, refused, servfail, type Decision, type Zone } from './dns-answer.js';
import type { Forwarder } from './forwarder.js';
import { openFastPath, type FastPath } from './native-fastpath.js';
import { whenBound } from '../bound.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface DnsServerOptions {
  readonly listen: readonly ListenAddress[];
  readonly zone: Zone;
  readonly forwarder: Forwarder;
  /** Whether a client address may use this server at all. */
  readonly allowed: (address: string) => boolean;
  readonly log: Logger;
  readonly maxTcpConnections?: number;
  readonly tcpIdleMs?: number;
  /** Changes whenever the answers may change (the record set's generation); enables the reply cache. */
  readonly generation?: () => number;
  /**
   * IPv4 networks whose clients the native fast path may answer (a subset of
   * what `allowed` accepts; everyone else is decided here). Without it, or
   * with `nativeFastPath: false`, UDP stays on node:dgram.
   */
  readonly allowedNetworks?: () => readonly Cidr[];
  readonly nativeFastPath?: boolean;
}

export interface DnsCounters {
  queries: number;
  answered: number;
  forwarded: number;
  servfail: number;
  formerr: number;
  refused: number;
  dropped: number;
  truncated: number;
  nxdomain: number;
}

const MAX_TCP_BUFFER = 2 + 65535 + 2;

export class DnsServer {
  private udp: Socket[] = [];
  private fast: FastPath[] = [];
  private fastGeneration = -1;
  /** Native answers of fast paths already closed, so the counters never go back. */
  private closedFast = { hits: 0, nxdomain: 0 };
  private tcp: Server[] = [];
  private readonly conns = new Set<TcpSocket>();
  private readonly c: DnsCounters = { queries: 0, answered: 0, forwarded: 0, servfail: 0, formerr: 0, refused: 0, dropped: 0, truncated: 0, nxdomain: 0 };
  /** Where it listens now (ports resolved when 0 was asked). */
  bound: ListenAddress[] = [];
  private readonly cache: AnswerCache | undefined;

  constructor(private readonly o: DnsServerOptions) {
    this.cache = o.generation ? new AnswerCache(o.generation) : undefined;
  }

  /** Every query counted once, whether the native thread or this file answered it. */
  get counters(): DnsCounters {
    let { hits, nxdomain } = this.closedFast;
    for (const f of this.fast) {
      const s = f.stats();
      hits += s.hits;
      nxdomain += s.nxdomain;
    }
    return { ...this.c, queries: this.c.queries + hits, answered: this.c.answered + hits, nxdomain: this.c.nxdomain + nxdomain };
  }

  /** The native fast paths' own counters (summed), for status. */
  fastPathStats(): Record<string, number> | undefined {
    if (this.fast.length === 0) return undefined;
    const sum: Record<string, number> = {};
    for (const f of this.fast) for (const [k, v] of Object.entries(f.stats())) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }

  /**
   * The answers may have changed (record set, network config): call on every
   * change. A new generation empties the native tables, the allowed networks
   * are pushed again. Misses call it too, as a backstop.
   */
  sync(): void {
    if (this.fast.length === 0) return;
    const g = this.o.generation?.() ?? -1;
    const nets = this.o.allowedNetworks?.() ?? [];
    for (const f of this.fast) {
      if (g !== this.fastGeneration) f.clear();
      f.setAllowed(nets);
    }
    this.fastGeneration = g;
  }

  private useFastPath(host: string): boolean {
    return this.o.nativeFastPath !== false && this.cache !== undefined && this.o.allowedNetworks !== undefined && isIP(host) === 4;
  }

  /** The native socket for one IPv4 address, or undefined when the addon is not built (dgram then). */
  private openFast(l: ListenAddress): FastPath | undefined {
    let fp: FastPath | undefined;
    const onMiss = (msg: Buffer, address: string, port: number): void => {
      // Runs from the addon's threadsafe call: it must never throw.
      try {
        if (fp === undefined || !this.fast.includes(fp)) return;
        const f = fp;
        if (this.o.generation && this.o.generation() !== this.fastGeneration) this.sync();
        const hit = this.cached(msg, address);
        if (hit !== undefined) {
          f.send(hit, address, port);
          return;
        }
        this.handle(msg, address, 'udp').then(
          (out) => {
            if (out !== undefined && this.fast.includes(f)) f.send(out, address, port);
          },
          (e: unknown) => this.o.log.error({ err: (e as Error).message }, 'DNS query failed (bug)'),
        );
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, 'DNS query failed (bug)');
      }
    };
    try {
      fp = openFastPath(l.host, l.port, onMiss);
    } catch (e) {
      if ((e as { code?: string }).code === 'INTERNAL') {
        this.o.log.warn({ err: (e as Error).message }, 'DNS native fast path unavailable; serving UDP through node:dgram');
        return undefined;
      }
      throw e;
    }
    fp.setAllowed(this.o.allowedNetworks?.() ?? []);
    this.fastGeneration = this.o.generation?.() ?? -1;
    return fp;
  }

  async start(): Promise<void> {
    try {
      for (const l of this.o.listen) {
        const fp = this.useFastPath(l.host) ? this.openFast(l) : undefined;
        if (fp !== undefined) {
          this.fast.push(fp);
          await this.listenTcp(l.host, fp.port);
          continue;
        }
        const udp = createSocket({ type: isIP(l.host) === 6 ? 'udp6' : 'udp4' });
        udp.on('message', (msg, rinfo) => {
          // The cached path stays synchronous: no promise per query.
          const hit = this.cached(msg, rinfo.address);
          if (hit !== undefined) {
            udp.send(hit, rinfo.port, rinfo.address);
            return;
          }
          this.handle(msg, rinfo.address, 'udp').then(
            (out) => {
              // The socket may have closed while a forward was pending.
              if (out !== undefined && this.udp.includes(udp)) udp.send(out, rinfo.port, rinfo.address, () => undefined);
            },
            (e: unknown) => this.o.log.error({ err: (e as Error).message }, 'DNS query failed (bug)'),
          );
        });
        udp.on('error', (e) => this.o.log.warn({ err: e.message }, 'DNS UDP socket error'));
        await whenBound(udp, (done) => udp.bind(l.port, l.host, done));
        this.udp.push(udp);
        await this.listenTcp(l.host, udp.address().port);
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.o.log.info({ listen: this.bound.map((b) => `${b.host}:${b.port}`), nativeUdp: this.fast.length }, 'DNS server listening (UDP and TCP)');
  }

  private async listenTcp(host: string, port: number): Promise<void> {
    const tcp = createServer((c) => this.onConnection(c));
    tcp.on('error', (e) => this.o.log.warn({ err: e.message }, 'DNS TCP server error'));
    await whenBound(tcp, (done) => tcp.listen(port, host, done));
    this.tcp.push(tcp);
    this.bound.push({ host, port });
  }

  async stop(): Promise<void> {
    const [udp, tcp, fast] = [this.udp, this.tcp, this.fast];
    for (const f of fast) {
      const st = f.stats();
      this.closedFast.hits += st.hits;
      this.closedFast.nxdomain += st.nxdomain;
    }
    this.fast = [];
    for (const f of fast) f.close();
    this.udp = [];
    this.tcp = [];
    this.bound = [];
    for (const s of udp) s.close();
    for (const c of this.conns) c.destroy();
    await Promise.all(tcp.map((t) => new Promise<void>((resolve) => t.close(() => resolve()))));
  }

  /** The bytes to send back for one query, or undefined to send nothing. */
  async handle(query: Buffer, from: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    this.c.queries++;
    if (!this.o.allowed(from)) {
      if (query.length < 12 || (query.readUInt16BE(2) & 0x8000) !== 0) {
        this.c.dropped++;
        return undefined;
      }
      this.c.refused++;
      return refused(query);
    }
    const decide = (): Decision => decideQuery(query, this.o.zone, transport);
    // Only UDP replies that fit are kept: a truncated reply depends on the transport.
    const keep = (replies: readonly Buffer[], turn: number, rcode: string): void => {
      // Only for clients the thread may answer itself; the key ignores the client.
      for (const f of this.fast) f.put(query, replies, rcode === 'NXDOMAIN', turn);
    };
    const d =
      this.cache && transport === 'udp'
        ? this.cache.decideAndKeep(query, decide, (x) => x.kind === 'reply' && x.rcode !== 'FORMERR' && x.rcode !== 'TRUNCATED', this.fast.length > 0 ? keep : undefined)
        : decide();
    if (d.kind === 'drop') {
      this.c.dropped++;
      return undefined;
    }
    if (d.kind === 'reply') {
      this.c.answered++;
      if (d.rcode === 'FORMERR') this.c.formerr++;
      if (d.rcode === 'TRUNCATED') this.c.truncated++;
      if (d.rcode === 'NXDOMAIN') this.c.nxdomain++;
      return d.bytes;
    }
    this.c.forwarded++;
    const answer = transport === 'udp' ? await this.o.forwarder.udp(query) : await this.o.forwarder.tcp(query);
    if (answer !== undefined) return answer;
    this.c.servfail++;
    return servfail(query);
  }

  /** A cached UDP reply for an allowed client, counted like any other; undefined on a miss. */
  private cached(query: Buffer, from: string): Buffer | undefined {
    const hit = this.cache?.get(query);
    if (hit === undefined || !this.o.allowed(from)) return undefined;
    this.c.queries++;
    this.c.answered++;
    if (hit.rcode === 'NXDOMAIN') this.c.nxdomain++;
    return hit.bytes;
  }

  private onConnection(c: TcpSocket): void {
    if (this.conns.size >= (this.o.maxTcpConnections ?? 64) || !this.o.allowed(c.remoteAddress ?? '')) {
      c.destroy();
      return;
    }
    this.conns.add(c);
    const from = c.remoteAddress ?? '';
    let buf = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    c.setTimeout(this.o.tcpIdleMs ?? 10_000, () => c.destroy());
    c.on('error', () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_TCP_BUFFER * 4) {
        c.destroy();
        return;
      }
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        // In order: pipelined queries get their answers one after the other.
        chain = chain.then(async () => {
          const out = await this.handle(Buffer.from(msg), from, 'tcp').catch(() => undefined);
          if (out === undefined || c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          c.write(Buffer.concat([len, out]));
        });
      }
    });
  }
}
