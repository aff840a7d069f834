// The udp planner: (local lease, remote leases, config, underlay) -> what the
// kernel and the forwarder should hold, as plain data. Pure, so every rule is
// unit-tested without a kernel. Layout (flannel's udp backend, with weft's names):
//   bridge weft0       <gateway>/<subnetLen>, MTU = overlay MTU (containers hang off it)
//   tun    weft-tun    MTU = overlay MTU, no address
//   route  <network> dev weft-tun src <gateway> proto 87
//          (the host subnet's connected route on weft0 is more specific, so
//          only traffic for other hosts enters the TUN device)
//   peers  remote subnet -> remote PublicIP:Port, for the native forwarder
// Remote leases of another backend are refused (skipped, with a reason that
// says so): one network, one backend.

import { formatCidr, formatIp, lastAddress, nthAddress } from '../../ipam/cidr.js';
import type { Cidr, Lease, NetworkConfig } from '../../ipam/types.js';
import { overlayMtu, remoteLeaseProblem, validIp } from '../backend.js';
import { deriveBridgeMac } from '../vxlan/vtep-mac.js';
import { BRIDGE_NAME, type BridgePlan, type SkippedLease } from '../vxlan/plan.js';

export const TUN_NAME = 'weft-tun';

export interface UdpPeer {
  readonly subnet: Cidr;
  readonly publicIP: string;
  readonly ip: number;
  readonly port: number;
}

export interface UdpPlan {
  readonly bridge: BridgePlan;
  readonly tun: { readonly name: string; readonly mtu: number };
  /** The one route into the TUN device: the whole network, sourced from the gateway. */
  readonly route: { readonly dst: string; readonly src: string };
  readonly peers: readonly UdpPeer[];
  readonly skipped: readonly SkippedLease[];
  /** Remote leases of another backend type (also in skipped): a mixed network. */
  readonly foreignBackends: number;
}

export interface UdpPlanInput {
  readonly local: Lease;
  readonly remotes: readonly Lease[];
  readonly config: NetworkConfig;
  readonly underlay: { readonly publicIP: string; readonly mtu: number };
}

export function planUdp(input: UdpPlanInput): UdpPlan {
  const { local, config, underlay } = input;
  const mtu = overlayMtu('udp', underlay.mtu, config.backend.encrypt === true);
  const localIp = validIp(underlay.publicIP) ?? -1;
  const peers: UdpPeer[] = [];
  const skipped: SkippedLease[] = [];
  let foreignBackends = 0;
  let reach: { cidr: Cidr; last: number } | undefined;
  const ipOwner = new Map<number, string>();
  // Sorted by subnet so that, of two colliding leases, the same one wins on every host and pass.
  const remotes = [...input.remotes].sort((a, b) => a.subnet.addr - b.subnet.addr || a.subnet.len - b.subnet.len);
  for (const lease of remotes) {
    const subnet = formatCidr(lease.subnet);
    const ip = validIp(lease.attrs.publicIP);
    if (lease.attrs.backendType !== 'udp') foreignBackends++;
    let reason = remoteLeaseProblem(lease, 'udp', config.network, local.subnet, localIp);
    if (reason === undefined && reach && lease.subnet.addr <= reach.last) reason = `overlaps remote subnet ${formatCidr(reach.cidr)}`;
    // Received datagrams are attributed to a lease by source IP, so two leases cannot share one.
    if (reason === undefined && ip !== undefined && ipOwner.has(ip)) reason = `PublicIP ${lease.attrs.publicIP} is already used by ${ipOwner.get(ip)}`;
    if (reason !== undefined || ip === undefined) {
      skipped.push({ subnet, reason: reason ?? 'no PublicIP' });
      continue;
    }
    const last = lastAddress(lease.subnet);
    if (!reach || last > reach.last) reach = { cidr: lease.subnet, last };
    ipOwner.set(ip, subnet);
    peers.push({ subnet: lease.subnet, publicIP: lease.attrs.publicIP, ip, port: config.backend.port });
  }
  const gateway = formatIp(nthAddress(local.subnet, 1));
  return {
    bridge: { name: BRIDGE_NAME, mtu, mac: deriveBridgeMac(underlay.publicIP), address: `${gateway}/${local.subnet.len}` },
    tun: { name: TUN_NAME, mtu },
    route: { dst: formatCidr(config.network), src: gateway },
    peers,
    skipped,
    foreignBackends,
  };
}
