// The udp Backend the agent drives: a userspace tunnel over TUN for hosts
// without kernel VXLAN, optionally sealed. Control lives here, forwarding in
// the native addon's own threads (forwarder.ts): each reconcile pass plans
// from the leases (plan.ts, pure), makes the kernel match (reconcile.ts) and
// pushes the peer table with per-peer-direction keys (keys.ts) to the
// forwarder. A key-source change re-pushes the table without a pass, so key
// rotation needs no restart. Drop counters are read every few seconds and
// logged only when they rose: one line per interval at most, however many
// hostile datagrams arrive.
//
// The TUN device is persistent: when the agent dies, the device and its
// route stay, and the restarted agent reattaches without a kernel write.

import type { Logger } from 'pino';
import { WeftError } from '../../ipam/errors.js';
import { describeKeyring } from '../../ipam/keys.js';
import type { Cidr, Lease, NetworkConfig } from '../../ipam/types.js';
import type { Backend, ReconcileSummary } from '../backend.js';
import type { Netlink } from '../netlink/index.js';
import type { SysctlWriter } from '../sysctl.js';
import { Coalescer } from '../vxlan/serial.js';
import { takeEpoch } from './epoch.js';
import { openNativeDataPath, type OpenDataPath, type UdpDataPath } from './forwarder.js';
import { type DeriveKey, type Keyring, peerKeys } from './keys.js';
import type { PeerEntry } from './peer-table.js';
import { TUN_NAME, type UdpPeer, planUdp } from './plan.js';
import { applyUdpOps, diffUdp, readUdpActual } from './reconcile.js';

/** Where the keyring comes from: the agent's KeySource (--key-file, or the cluster key in etcd). */
export interface UdpKeySource {
  current(): Keyring;
  /** Calls fn after every change; returns the unsubscribe function. */
  subscribe(fn: () => void): () => void;
}

export interface UdpBackendOptions {
  readonly netlink: Netlink;
  readonly config: NetworkConfig;
  readonly underlay: { readonly iface: string; readonly publicIP: string; readonly mtu: number };
  readonly sysctl: SysctlWriter;
  readonly log: Logger;
  /** Persists the nonce epoch (sealed mode). */
  readonly stateDir: string;
  /** Required when the config says Encrypt. */
  readonly keys?: UdpKeySource;
  readonly deriveKey?: DeriveKey;
  /** TUN queues / sending threads; default 1 (2 cores are shared with the receive path and the kernel). */
  readonly queues?: number;
  readonly openDataPath?: OpenDataPath;
  /** How often drop counters are checked for the log; default 5000 ms. */
  readonly statsIntervalMs?: number;
}

export interface UdpReconcileReport extends ReconcileSummary {
  readonly peers: number;
  readonly skipped: readonly { readonly subnet: string; readonly reason: string }[];
  readonly ms: number;
}

export interface UdpBackend extends Backend {
  readonly type: 'udp';
  reconcile(local: Lease, remotes: readonly Lease[]): Promise<UdpReconcileReport>;
  stats(): Readonly<Record<string, number>>;
}

export function createUdpBackend(opts: UdpBackendOptions): UdpBackend {
  const { netlink: nl, config, underlay, sysctl, log } = opts;
  const sealed = config.backend.encrypt === true;
  if (sealed && !opts.keys) {
    throw new WeftError('INVALID_CONFIG', 'Backend.Encrypt is true but no key source was given (--key-file or the cluster key in etcd)', { field: 'Backend.Encrypt' });
  }
  const openDataPath = opts.openDataPath ?? openNativeDataPath;
  let dataPath: UdpDataPath | undefined;
  let peers: readonly UdpPeer[] = [];
  let localSubnet: Cidr | undefined;
  let closed = false;
  let lastSkipped = '';
  /** What the forwarder's table was last built from: a pass that changes nothing pushes nothing (no re-derivation, no write lock). */
  let pushedFor = '';
  let lastStats: Record<string, number> = {};

  const push = (): void => {
    if (!dataPath || !localSubnet) return;
    const ring = sealed ? opts.keys!.current() : undefined;
    if (ring && ring.keys.length === 0) log.error('the keyring is empty: nothing can be sealed or opened');
    const entries: PeerEntry[] = peers.map((p) => ({
      subnet: p.subnet.addr,
      len: p.subnet.len,
      ip: p.ip,
      port: p.port,
      keys: ring ? peerKeys(ring, underlay.publicIP, p.publicIP, opts.deriveKey) : [],
    }));
    dataPath.setPeers(localSubnet, entries);
  };
  const unsubscribe = opts.keys?.subscribe(() => {
    if (closed) return;
    push();
    log.info({ keys: describeKeyring(opts.keys!.current()) }, 'udp keys changed; peer keys re-derived');
  });

  const drops = (): void => {
    if (!dataPath) return;
    const now = dataPath.stats();
    const rose: Record<string, number> = {};
    for (const [k, v] of Object.entries(now)) if (k.startsWith('drop') && v > (lastStats[k] ?? 0)) rose[k] = v - (lastStats[k] ?? 0);
    lastStats = now;
    if (Object.keys(rose).length) log.warn({ dropped: rose, intervalMs }, 'udp data path dropped packets (counts since the last report)');
  };
  const intervalMs = opts.statsIntervalMs ?? 5000;
  const timer = setInterval(drops, intervalMs);
  timer.unref();

  async function ensureDataPath(): Promise<UdpDataPath> {
    if (dataPath) return dataPath;
    const epoch = sealed ? await takeEpoch(opts.stateDir) : 0;
    dataPath = openDataPath({ tunName: TUN_NAME, queues: opts.queues ?? 1, bindIp: underlay.publicIP, port: config.backend.port, sealed, epoch });
    log.info({ tun: TUN_NAME, port: config.backend.port, sealed, queues: opts.queues ?? 1 }, 'udp forwarder started');
    return dataPath;
  }

  async function pass({ local, remotes }: { local: Lease; remotes: readonly Lease[] }): Promise<UdpReconcileReport> {
    const started = performance.now();
    await sysctl('net.ipv4.ip_forward', '1');
    await ensureDataPath();
    // The overlay is IPv4: without this the kernel sends router solicitations into the TUN device,
    // which the forwarder can only drop (and count). A host without IPv6 has nothing to switch off.
    await sysctl(`net.ipv6.conf.${TUN_NAME}.disable_ipv6`, '1').catch(() => undefined);
    const plan = planUdp({ local, remotes, config, underlay });
    const skippedText = JSON.stringify(plan.skipped);
    if (skippedText !== lastSkipped) {
      for (const s of plan.skipped) log.warn(s, 'remote lease skipped');
      if (plan.foreignBackends > 0) {
        log.error({ foreign: plan.foreignBackends }, 'mixed backends in one network: leases of another backend type are refused (not reachable from here)');
      }
      lastSkipped = skippedText;
    }
    // Peers first: the route into the TUN device only helps once the forwarder knows where to send.
    peers = plan.peers;
    localSubnet = local.subnet;
    const table = JSON.stringify([local.subnet, plan.peers]);
    if (table !== pushedFor) {
      push();
      pushedFor = table;
    }
    const ops = diffUdp(plan, await readUdpActual(nl, plan, config.network));
    const result = ops.length ? await applyUdpOps(nl, plan, ops) : { applied: 0, failed: [] };
    for (const f of result.failed) log.warn(f, 'udp op failed');
    const report: UdpReconcileReport = { ops: ops.length, ...result, peers: plan.peers.length, skipped: plan.skipped, ms: performance.now() - started };
    const summary = { ops: report.ops, applied: report.applied, failed: report.failed.length, peers: report.peers, ms: Math.round(report.ms) };
    if (ops.length) log.info(summary, 'udp reconciled');
    else log.debug(summary, 'udp already up to date');
    return report;
  }

  const serial = new Coalescer(pass);

  return {
    type: 'udp',
    async leaseData() {
      // flannel's udp backend publishes no BackendData; peers need only PublicIP and the config's port.
      return {};
    },
    reconcile(local, remotes) {
      if (closed) return Promise.reject(new WeftError('UNAVAILABLE', 'udp backend is closed'));
      return serial.run({ local, remotes });
    },
    stats() {
      return dataPath ? dataPath.stats() : {};
    },
    async close() {
      closed = true;
      clearInterval(timer);
      unsubscribe?.();
      await serial.idle();
      drops();
      dataPath?.close();
      dataPath = undefined;
    },
  };
}

