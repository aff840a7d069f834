// What every data-plane backend (vxlan, udp over TUN) offers the agent. The
// agent computes the whole desired picture (local lease, all remote leases)
// and hands it over; the backend reconciles the kernel (or its forwarder) to
// it. Encapsulation overhead is a property of the backend, so the overlay MTU
// is computed from the underlay's, never guessed.

import { cidrContains, cidrsOverlap, formatCidr, parseIp } from '../ipam/cidr.js';
import type { BackendType, Cidr, Lease } from '../ipam/types.js';

/** Bytes each backend adds to an IPv4 packet on the underlay. */
export const ENCAP_OVERHEAD: Readonly<Record<BackendType, number>> = {
  // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
  vxlan: 50,
  // outer IPv4 20 + UDP 8 (the AEAD variant adds its nonce and tag on top)
  udp: 28,
};

/**
 * What a sealed udp datagram adds on top of ENCAP_OVERHEAD.udp: a 17-byte
 * header (type, key id, epoch, counter; see native/src/udp_forwarder.c) and
 * the 16-byte Poly1305 tag.
 */
export const SEAL_OVERHEAD = 33;

export function overlayMtu(backend: BackendType, underlayMtu: number, sealed = false): number {
  return underlayMtu - ENCAP_OVERHEAD[backend] - (backend === 'udp' && sealed ? SEAL_OVERHEAD : 0);
}

/** The address as a number, or undefined when `s` is not an IPv4 address (a lease from someone else may hold anything). */
export function validIp(s: string): number | undefined {
  try {
    return parseIp(s);
  } catch {
    return undefined;
  }
}

/**
 * Why backend `ours` cannot reach a remote lease, for the reasons every
 * backend shares (its type, its public IP, where its subnet lies), or
 * undefined; each planner adds its own checks after these. Both planners
 * give the same words, so an operator reading either log learns the same fix.
 */
export function remoteLeaseProblem(lease: Lease, ours: BackendType, network: Cidr, localSubnet: Cidr, localIp: number): string | undefined {
  const { attrs, subnet } = lease;
  if (attrs.backendType !== ours) {
    return `backend type "${attrs.backendType}", not ${ours}: one network runs one backend; restart that host's agent so it follows the network config (README: switching Backend.Type)`;
  }
  const ip = validIp(attrs.publicIP);
  if (ip === undefined) return `PublicIP ${JSON.stringify(attrs.publicIP)} is not an IPv4 address`;
  if (ip === 0) return 'PublicIP is 0.0.0.0';
  if (ip === localIp) return `PublicIP ${attrs.publicIP} is this host's own`;
  if (!cidrContains(network, subnet)) return `outside the network ${formatCidr(network)}`;
  if (cidrsOverlap(subnet, localSubnet)) return `overlaps this host's subnet ${formatCidr(localSubnet)}`;
  return undefined;
}

/** What one reconcile pass did: kernel writes asked for, done, and those that failed. */
export interface ReconcileSummary {
  readonly ops: number;
  readonly applied: number;
  readonly failed: readonly { readonly op: string; readonly error: string }[];
}

export interface Backend {
  readonly type: BackendType;
  /** Data published in this host's lease (`BackendData`), e.g. `{VtepMAC}`; stable across restarts. */
  leaseData(): Promise<Record<string, unknown>>;
  /**
   * Makes the data plane match: `local` is this host's lease, `remotes` every other host's.
   * May resolve with a summary (the vxlan backend does) for logs, status and metrics.
   */
  reconcile(local: Lease, remotes: readonly Lease[]): Promise<ReconcileSummary | void>;
  /** Forwarding and drop counters, for status (backends that forward in userspace). */
  stats?(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}
