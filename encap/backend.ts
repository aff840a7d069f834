// What every data-plane backend (vxlan, udp over TUN) offers the agent. The
// agent computes the whole desired picture (local lease, all remote leases)
// and hands it over; the backend reconciles the kernel (or its forwarder) to
// it. Encapsulation overhead is a property of the backend, so the overlay MTU
// is computed from the underlay's, never guessed.

import type { BackendType, Lease } from '../ipam/types.js';

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
