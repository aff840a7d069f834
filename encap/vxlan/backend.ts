// The vxlan Backend the agent drives: each reconcile pass reads weft's
// objects from the kernel, plans the desired state from the leases (pure),
// diffs the two (pure) and applies the difference. Nothing lives only in
// memory: a restarted agent reads the same kernel state and, when it is
// already right, writes nothing at all, so traffic in flight never notices.
//
// Passes are serialized and coalesced (serial.ts); the backend never deletes
// its devices on close(), because an agent that stops (or is killed) must
// leave the data plane forwarding.

import type { Logger } from 'pino';
import { WeftError } from '../../ipam/errors.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import type { Backend, ReconcileSummary } from '../backend.js';
import type { Netlink } from '../netlink/index.js';
import type { SysctlWriter } from '../sysctl.js';
import { type LinkRole, diffVxlan } from './diff.js';
import { BRIDGE_NAME, type SkippedLease, planVxlan, vtepName } from './plan.js';
import { type OpFailure, applyOps, readActual } from './reconcile.js';
import { Coalescer } from './serial.js';
import { deriveVtepMac, normalizeVtepMac } from './vtep-mac.js';

export interface VxlanBackendOptions {
  /** A netlink handle in the host's namespace; the caller owns (and closes) it. */
  readonly netlink: Netlink;
  readonly config: NetworkConfig;
  /** The underlay interface, this host's public IP (lease PublicIP) and the interface's MTU. */
  readonly underlay: { readonly iface: string; readonly publicIP: string; readonly mtu: number };
  /** Sets sysctls in the host's namespace: `procSysctl` in the agent (see encap/sysctl.ts). */
  readonly sysctl: SysctlWriter;
  readonly log: Logger;
}

export interface ReconcileReport extends ReconcileSummary {
  /** Kernel writes the diff asked for (0 when everything already matched). */
  readonly ops: number;
  readonly applied: number;
  readonly failed: readonly OpFailure[];
  readonly notTried: number;
  readonly skipped: readonly SkippedLease[];
  readonly ms: number;
}

export interface VxlanBackend extends Backend {
  readonly type: 'vxlan';
  /** Resolves when the pass is done; op failures are reported (and logged), not thrown. */
  reconcile(local: Lease, remotes: readonly Lease[]): Promise<ReconcileReport>;
}

interface PassArgs {
  readonly local: Lease;
  readonly remotes: readonly Lease[];
}

export function createVxlanBackend(opts: VxlanBackendOptions): VxlanBackend {
  const { netlink: nl, config, underlay, sysctl, log } = opts;
  const names: Readonly<Record<LinkRole, string>> = { bridge: BRIDGE_NAME, vtep: vtepName(config.backend.vni) };
  let mac: string | undefined;
  let closed = false;
  // Skip reasons are logged when they change, not on every resync.
  let lastSkipped = '';

  /** The existing VTEP's MAC wins (peers already know it); otherwise the derived one. */
  async function vtepMac(): Promise<string> {
    if (mac) return mac;
    const link = await nl.getLink(names.vtep);
    mac = (link?.kind === 'vxlan' ? normalizeVtepMac(link.mac) : undefined) ?? deriveVtepMac(underlay.publicIP, config.backend.vni);
    return mac;
  }

  async function pass({ local, remotes }: PassArgs): Promise<ReconcileReport> {
    const started = performance.now();
    await sysctl('net.ipv4.ip_forward', '1');
    const { actual, underlayIndex } = await readActual(nl, { ...names, underlay: underlay.iface }, config.network);
    if (underlayIndex === undefined) {
      throw new WeftError('NOT_FOUND', `underlay interface ${underlay.iface} does not exist`, { iface: underlay.iface });
    }
    const plan = planVxlan({
      local,
      remotes,
      config,
      underlay: { ...underlay, ifindex: underlayIndex },
      vtepMac: await vtepMac(),
    });
    const skippedText = JSON.stringify(plan.skipped);
    if (skippedText !== lastSkipped) {
      for (const s of plan.skipped) log.warn(s, 'remote lease skipped');
      lastSkipped = skippedText;
    }
    const ops = diffVxlan(plan, actual);
    const index = new Map<LinkRole, number>();
    if (actual.bridge) index.set('bridge', actual.bridge.index);
    if (actual.vtep) index.set('vtep', actual.vtep.index);
    const result = ops.length ? await applyOps(nl, ops, index, names) : { applied: 0, failed: [], notTried: 0 };
    const report: ReconcileReport = { ops: ops.length, ...result, skipped: plan.skipped, ms: performance.now() - started };
    for (const f of result.failed) log.warn(f, 'vxlan op failed');
    const summary = { ops: report.ops, applied: report.applied, failed: report.failed.length, notTried: report.notTried, remotes: plan.routes.length, ms: Math.round(report.ms) };
    if (ops.length) log.info(summary, 'vxlan reconciled');
    else log.debug(summary, 'vxlan already up to date');
    return report;
  }

  const serial = new Coalescer<PassArgs, ReconcileReport>(pass);

  return {
    type: 'vxlan',
    async leaseData() {
      return { VtepMAC: await vtepMac() };
    },
    reconcile(local, remotes) {
      if (closed) return Promise.reject(new WeftError('UNAVAILABLE', 'vxlan backend is closed'));
      return serial.run({ local, remotes });
    },
    async close() {
      closed = true;
      await serial.idle();
    },
  };
}
