// The vxlan planner: (local lease, remote leases, network config, underlay)
// -> the kernel objects that should exist, as plain data. Pure, so every rule
// (which remotes count, which addresses, which MTU) is unit-tested without a
// kernel; the reconciler (reconcile.ts) compares the result with what the
// kernel holds and the diff (diff.ts) decides what to change.
//
// It mirrors flannel's vxlan backend on purpose, so weft and flannel hosts
// read each other's leases and a flannel operator finds what they expect:
//   bridge weft0          <gateway>/<subnetLen>, MTU = overlay MTU
//   vtep   weft.<VNI>     <subnet network addr>/32, learning off, MTU = underlay - 50
//   per remote lease:     neigh <remote net addr> lladdr <VtepMAC> dev weft.<VNI> permanent
//                         fdb   <VtepMAC> dst <remote PublicIP> dev weft.<VNI> self permanent
//                         route <remote subnet> via <remote net addr> dev weft.<VNI> onlink proto 87
// The remote's network address is its VTEP's own address, so the neighbour
// entry resolves the route's next hop and the FDB entry says where that MAC
// lives on the underlay; nothing is ever learned or flooded.

import { overlayMtu, remoteLeaseProblem, validIp } from '../backend.js';
import { formatCidr, formatIp, lastAddress, nthAddress } from '../../ipam/cidr.js';
import type { Cidr, Lease, NetworkConfig } from '../../ipam/types.js';
import { deriveBridgeMac, normalizeVtepMac } from './vtep-mac.js';

export const BRIDGE_NAME = 'weft0';

/** `weft.<VNI>` (at most 13 characters: VNIs have at most 8 digits, IFNAMSIZ allows 15). */
export function vtepName(vni: number): string {
  return `weft.${vni}`;
}

export interface UnderlayInfo {
  /** The underlay interface (the VTEP's `dev`). */
  readonly iface: string;
  /** Its ifindex, when known; the diff then checks the VTEP's dev too. */
  readonly ifindex?: number;
  /** Source address of encapsulated packets; the host's lease PublicIP. */
  readonly publicIP: string;
  readonly mtu: number;
}

export interface BridgePlan {
  readonly name: string;
  readonly mtu: number;
  /** Used when the bridge is created, never to change an existing one (containers cache it). */
  readonly mac: string;
  /** `<gateway>/<subnetLen>`, e.g. 10.42.7.1/24. */
  readonly address: string;
}

export interface VtepPlan {
  readonly name: string;
  readonly vni: number;
  readonly local: string;
  readonly port: number;
  readonly learning: false;
  readonly dev: string;
  readonly devIndex?: number;
  readonly mtu: number;
  readonly mac: string;
  /** `<subnet network addr>/32`, e.g. 10.42.7.0/32 (flannel's form). */
  readonly address: string;
}

/** A permanent neighbour entry on the VTEP. */
export interface NeighPlan {
  readonly ip: string;
  readonly mac: string;
}

/** A self, permanent FDB entry on the VTEP: the remote VTEP's MAC lives at `dst`. */
export interface FdbPlan {
  readonly mac: string;
  readonly dst: string;
}

/** `dst via gateway dev <vtep> onlink proto 87`, main table. */
export interface RoutePlan {
  readonly dst: string;
  readonly gateway: string;
}

export interface SkippedLease {
  readonly subnet: string;
  readonly reason: string;
}

export interface VxlanPlan {
  readonly bridge: BridgePlan;
  readonly vtep: VtepPlan;
  readonly neighbours: readonly NeighPlan[];
  readonly fdb: readonly FdbPlan[];
  readonly routes: readonly RoutePlan[];
  /** Remote leases left out, with why (the reconciler logs them). */
  readonly skipped: readonly SkippedLease[];
}

export interface PlanInput {
  readonly local: Lease;
  readonly remotes: readonly Lease[];
  readonly config: NetworkConfig;
  readonly underlay: UnderlayInfo;
  readonly vtepMac: string;
}

/** Why a remote lease cannot be programmed, or undefined when it can. */
function rejectReason(lease: Lease, input: PlanInput, localIp: number): string | undefined {
  const shared = remoteLeaseProblem(lease, 'vxlan', input.config.network, input.local.subnet, localIp);
  if (shared !== undefined) return shared;
  const mac = lease.attrs.backendData['VtepMAC'];
  return normalizeVtepMac(mac) === undefined ? `BackendData.VtepMAC ${JSON.stringify(mac)} is not a unicast MAC` : undefined;
}

export function planVxlan(input: PlanInput): VxlanPlan {
  const { local, config, underlay } = input;
  const vtep = vtepName(config.backend.vni);
  const mtu = overlayMtu('vxlan', underlay.mtu);
  const localIp = validIp(underlay.publicIP) ?? -1;

  const neighbours: NeighPlan[] = [];
  const fdb: FdbPlan[] = [];
  const routes: RoutePlan[] = [];
  const skipped: SkippedLease[] = [];
  // The taken subnet reaching furthest: prefixes nest or are disjoint, so in
  // address order a subnet overlaps an earlier one iff it starts before that
  // one's end (one comparison per lease, not one per pair).
  let reach: { cidr: Cidr; last: number } | undefined;
  const macOwner = new Map<string, string>();

  // Sorted by subnet so that, when two leases collide (same MAC, overlapping
  // subnets), the same one wins on every host and on every pass.
  const remotes = [...input.remotes].sort((a, b) => a.subnet.addr - b.subnet.addr || a.subnet.len - b.subnet.len);
  for (const lease of remotes) {
    const subnet = formatCidr(lease.subnet);
    let reason = rejectReason(lease, input, localIp);
    // '' only when rejected above (the MAC is checked there).
    const mac = normalizeVtepMac(lease.attrs.backendData['VtepMAC']) ?? '';
    if (!reason) {
      if (reach && lease.subnet.addr <= reach.last) reason = `overlaps remote subnet ${formatCidr(reach.cidr)}`;
      else if (macOwner.has(mac)) reason = `VtepMAC ${mac} is already used by ${macOwner.get(mac)}`;
    }
    if (reason) {
      skipped.push({ subnet, reason });
      continue;
    }
    const last = lastAddress(lease.subnet);
    if (!reach || last > reach.last) reach = { cidr: lease.subnet, last };
    macOwner.set(mac, subnet);
    const vtepIp = formatIp(lease.subnet.addr);
    neighbours.push({ ip: vtepIp, mac });
    fdb.push({ mac, dst: lease.attrs.publicIP });
    routes.push({ dst: subnet, gateway: vtepIp });
  }

  return {
    bridge: {
      name: BRIDGE_NAME,
      mtu,
      mac: deriveBridgeMac(underlay.publicIP),
      address: `${formatIp(nthAddress(local.subnet, 1))}/${local.subnet.len}`,
    },
    vtep: {
      name: vtep,
      vni: config.backend.vni,
      local: underlay.publicIP,
      port: config.backend.port,
      learning: false,
      dev: underlay.iface,
      ...(underlay.ifindex !== undefined ? { devIndex: underlay.ifindex } : {}),
      mtu,
      mac: input.vtepMac,
      address: `${formatIp(local.subnet.addr)}/32`,
    },
    neighbours,
    fdb,
    routes,
    skipped,
  };
}
