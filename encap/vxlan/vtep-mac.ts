// The VTEP's MAC address. Every remote host programs it into its neighbour
// and FDB tables (it is published in the lease's BackendData.VtepMAC), so it
// must not change when the agent restarts: a new MAC would leave every peer
// pointing at a MAC that no longer exists until their next watch event.
//
// Derived, not stored: a hash of (public IP, VNI) gives the same MAC on every
// start without a state file that could be lost or go stale, and two hosts
// differ because their public IPs differ. The backend still prefers the MAC of
// an existing VTEP device, so a host whose device predates this scheme (or was
// made by hand) keeps what its peers already know.

import { createHash } from 'node:crypto';

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** A locally administered, unicast MAC: a hash of what identifies the device. */
function derivedMac(...parts: readonly (string | number)[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest();
  // Bit 1 of the first octet: locally administered; bit 0 clear: unicast.
  h[0] = (h[0]! & 0xfc) | 0x02;
  return Array.from(h.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The VTEP's MAC, from the host's public IP and the VNI. */
export function deriveVtepMac(publicIP: string, vni: number): string {
  return derivedMac('weft-vtep', publicIP, vni);
}

/**
 * The bridge's MAC. Set explicitly when weft0 is created because a bridge
 * whose MAC was never set takes the lowest MAC of its ports and changes it as
 * containers come and go, which leaves every container's ARP entry for the
 * gateway stale; an assigned MAC never moves.
 */
export function deriveBridgeMac(publicIP: string): string {
  return derivedMac('weft-bridge', publicIP);
}

/**
 * The canonical (lower-case) form of a MAC a remote host published, or
 * undefined when it cannot be a VTEP's address: malformed, all-zero, or
 * multicast/broadcast (the kernel refuses those as FDB unicast entries, and
 * they would flood).
 */
export function normalizeVtepMac(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const mac = value.trim().toLowerCase();
  if (!MAC_RE.test(mac)) return undefined;
  if (mac === '00:00:00:00:00:00') return undefined;
  if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) return undefined;
  return mac;
}
