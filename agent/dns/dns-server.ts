// The DNS server's sockets: UDP and TCP on each listen address, feeding
// every query to decideQuery (dns-answer.ts) and sending what it decides.
// Only clients the `allowed` test accepts (the overlay network, loopback)
// get answers; anyone else gets REFUSED, so the forwarder never serves the
// underlay. Every handler is wrapped: a query can cost an answer, never the
// process. TCP connections are bounded in number, idle time and buffered
// bytes (RFC 7766's limits, small).

import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { AnswerCache } from './answer-cache.js';
import { decideQuery, refused, servfail, type Decision, type Zone } from './dns-answer.js';
import type { Forwarder } from './forwarder.js';

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
  private tcp: Server[] = [];
  private readonly conns = new Set<TcpSocket>();
  readonly counters: DnsCounters = { queries: 0, answered: 0, forwarded: 0, servfail: 0, formerr: 0, refused: 0, dropped: 0, truncated: 0, nxdomain: 0 };
  /** Where it listens now (ports resolved when 0 was asked). */
  bound: ListenAddress[] = [];
  private readonly cache: AnswerCache | undefined;

  constructor(private readonly o: DnsServerOptions) {
    this.cache = o.generation ? new AnswerCache(o.generation) : undefined;
  }

  async start(): Promise<void> {
    try {
      for (const l of this.o.listen) {
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
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(l.port, l.host, () => {
            udp.off('error', reject);
            resolve();
          });
        });
        this.udp.push(udp);
        const port = udp.address().port;
        const tcp = createServer((c) => this.onConnection(c));
        tcp.on('error', (e) => this.o.log.warn({ err: e.message }, 'DNS TCP server error'));
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, l.host, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
        this.tcp.push(tcp);
        this.bound.push({ host: l.host, port });
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.o.log.info({ listen: this.bound.map((b) => `${b.host}:${b.port}`) }, 'DNS server listening (UDP and TCP)');
  }

  async stop(): Promise<void> {
    const [udp, tcp] = [this.udp, this.tcp];
    this.udp = [];
    this.tcp = [];
    this.bound = [];
    for (const s of udp) s.close();
    for (const c of this.conns) c.destroy();
    await Promise.all(tcp.map((t) => new Promise<void>((resolve) => t.close(() => resolve()))));
  }

  /** The bytes to send back for one query, or undefined to send nothing. */
  async handle(query: Buffer, from: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    this.counters.queries++;
    if (!this.o.allowed(from)) {
      if (query.length < 12 || (query.readUInt16BE(2) & 0x8000) !== 0) {
        this.counters.dropped++;
        return undefined;
      }
      this.counters.refused++;
      return refused(query);
    }
    const decide = (): Decision => decideQuery(query, this.o.zone, transport);
    // Only UDP replies that fit are kept: a truncated reply depends on the transport.
    const d = this.cache && transport === 'udp' ? this.cache.decideAndKeep(query, decide, (x) => x.kind === 'reply' && x.rcode !== 'FORMERR' && x.rcode !== 'TRUNCATED') : decide();
    if (d.kind === 'drop') {
      this.counters.dropped++;
      return undefined;
    }
    if (d.kind === 'reply') {
      this.counters.answered++;
      if (d.rcode === 'FORMERR') this.counters.formerr++;
      if (d.rcode === 'TRUNCATED') this.counters.truncated++;
      if (d.rcode === 'NXDOMAIN') this.counters.nxdomain++;
      return d.bytes;
    }
    this.counters.forwarded++;
    const answer = transport === 'udp' ? await this.o.forwarder.udp(query) : await this.o.forwarder.tcp(query);
    if (answer !== undefined) return answer;
    this.counters.servfail++;
    return servfail(query);
  }

  /** A cached UDP reply for an allowed client, counted like any other; undefined on a miss. */
  private cached(query: Buffer, from: string): Buffer | undefined {
    const hit = this.cache?.get(query);
    if (hit === undefined || !this.o.allowed(from)) return undefined;
    this.counters.queries++;
    this.counters.answered++;
    if (hit.rcode === 'NXDOMAIN') this.counters.nxdomain++;
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
