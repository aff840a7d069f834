// The typed door to the DNS server's native UDP fast path
// (native/src/dns_fastpath.c): a socket served by a thread of its own that
// answers repeated cluster-name queries from a table filled by TypeScript,
// and hands every other datagram to `onMiss`. This module only loads the
// addon and encodes what is pushed into it; what to answer stays in
// dns-server.ts / dns-answer.ts.

import { loadNative } from '../../encap/netlink/native.js';
import { maskOf, parseIp } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import type { Cidr } from '../../ipam/types.js';

export interface FastPathStats {
  /** Queries answered by the native thread. */
  hits: number;
  /** Of which NXDOMAIN. */
  nxdomain: number;
  /** Datagrams handed to JS. */
  misses: number;
  /** Datagrams dropped because JS had MISS_QUEUE (4096) waiting already. */
  dropMissQueue: number;
  dropSendError: number;
  entries: number;
}

export interface FastPath {
  /** The bound port (the one asked, or the kernel's choice for 0). */
  readonly port: number;
  /** Clients the thread may answer; others always go to onMiss. */
  setAllowed(nets: readonly Cidr[]): void;
  /** Keeps the reply cycle for this query; false when the query is not of the shape the thread serves. */
  put(query: Buffer, replies: readonly Buffer[], nxdomain: boolean, turn: number): boolean;
  clear(): void;
  send(bytes: Buffer, ip: string, port: number): void;
  stats(): FastPathStats;
  close(): void;
}

interface NativeDns {
  dnsFastpathOpen(o: { bindIp: number; port: number; onMiss: (query: Buffer, ip: string, port: number) => void }): Omit<FastPath, 'setAllowed'> & {
    setAllowed(nets: Buffer): void;
  };
}

/** At most this many networks are pushed (the addon's limit). */
const MAX_NETS = 32;

export function encodeNets(nets: readonly Cidr[]): Buffer {
  const b = Buffer.alloc(Math.min(nets.length, MAX_NETS) * 8);
  nets.slice(0, MAX_NETS).forEach((n, i) => {
    b.writeUInt32BE(n.addr >>> 0, i * 8);
    b.writeUInt32BE(maskOf(n.len) >>> 0, i * 8 + 4);
  });
  return b;
}

/**
 * Binds host:port (IPv4) in the calling process's network namespace; throws with .code
 * EADDRINUSE/EACCES/EADDRNOTAVAIL like dgram, or a WeftError INTERNAL when the addon is not built.
 */
export function openFastPath(host: string, port: number, onMiss: (query: Buffer, ip: string, port: number) => void): FastPath {
  const addon = loadNative() as unknown as Partial<NativeDns>;
  if (typeof addon.dnsFastpathOpen !== 'function') {
    throw new WeftError('INTERNAL', 'the native addon predates the DNS fast path; rebuild it with `sh native/build.sh`', {});
  }
  const n = addon.dnsFastpathOpen({ bindIp: parseIp(host), port, onMiss });
  return {
    port: n.port,
    setAllowed: (nets) => n.setAllowed(encodeNets(nets)),
    put: (q, r, nx, turn) => n.put(q, r, nx, turn),
    clear: () => n.clear(),
    send: (b, ip, p) => n.send(b, ip, p),
    stats: () => n.stats(),
    close: () => n.close(),
  };
}
