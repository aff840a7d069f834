// Opens the udp backend's data path: the TUN queues (weft-tun, persistent,
// multi-queue, non-blocking) and the native forwarder that reads and writes
// them on its own threads (native/src/udp_forwarder.c). This is the one side
// effect of the backend's forwarding, behind a small interface so the backend
// logic is unit-tested with a fake.

import { parseIp } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import type { Cidr } from '../../ipam/types.js';
import { openTun } from '../netlink/index.js';
import { loadNative } from '../netlink/native.js';
import { closeSync } from 'node:fs';
import { encodePeerTable, type PeerEntry } from './peer-table.js';

/** The addon's udp part (native/src/udp_forwarder.c), typed here where it is used. */
interface NativeUdp {
  /** Starts the threads; owns tunFds from then on. */
  udpForwarderOpen(opts: { tunFds: number[]; bindIp: number; port: number; sealed: boolean; epoch: number }): {
    /** Replaces the peer table (peer-table.ts encodes it). */
    setPeers(table: Buffer): void;
    stats(): Record<string, number>;
    /** Stops the threads and closes the socket and the TUN fds. */
    close(): void;
  };
}

export interface UdpDataPath {
  /** The whole table: this host's subnet (the only destination accepted from peers) and the peers. */
  setPeers(local: Cidr, peers: readonly PeerEntry[]): void;
  /** Counters: txPackets, rxPackets, …, and drop* per reason. */
  stats(): Record<string, number>;
  close(): void;
}

export interface DataPathOptions {
  readonly tunName: string;
  /** TUN queues, one sending thread each (1..8). */
  readonly queues: number;
  /** Local address to bind (the host's public IP) and the backend's port. */
  readonly bindIp: string;
  readonly port: number;
  readonly sealed: boolean;
  /** Nonce epoch of this process (epoch.ts); ignored when not sealed. */
  readonly epoch: number;
}

export type OpenDataPath = (opts: DataPathOptions) => UdpDataPath;

export const openNativeDataPath: OpenDataPath = (opts) => {
  const fds: number[] = [];
  try {
    for (let q = 0; q < opts.queues; q++) fds.push(openTun({ name: opts.tunName, multiQueue: true, nonBlock: true, persist: true }).fd);
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  }
  let native: ReturnType<NativeUdp['udpForwarderOpen']>;
  try {
    native = (loadNative() as unknown as NativeUdp).udpForwarderOpen({ tunFds: fds, bindIp: parseIp(opts.bindIp), port: opts.port, sealed: opts.sealed, epoch: opts.epoch });
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    const err = e as NodeJS.ErrnoException;
    const hint = err.code === 'EADDRINUSE' ? `; another process (a second agent?) holds UDP port ${opts.port} on ${opts.bindIp}` : '';
    throw new WeftError('KERNEL', `udp backend: cannot start the forwarder: ${err.message}${hint}`, { code: err.code, port: opts.port });
  }
  return {
    setPeers: (local, peers) => native.setPeers(encodePeerTable(local, peers)),
    stats: () => native.stats(),
    close: () => native.close(),
  };
};
