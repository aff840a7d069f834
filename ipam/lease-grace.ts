// Keeps a remote lease programmed for a grace period after its key vanished
// from etcd, so that a key deleted by hand, or a lease revoked, which its
// owner re-creates within a second, costs no traffic: without it every peer
// drops the host's route, neighbour and FDB entry and adds them back, and
// packets in between are lost.
//
// Pure over plain data (the clock is a number passed in), so the rules are
// unit-tested without etcd or a kernel:
// - a lease in the watched set is used as it is: one re-created by the same
//   host plans the same kernel objects (nothing changes), one taken over by
//   another host replaces the old one at once;
// - a lease that left the set is kept until `graceMs` after it left, unless a
//   current lease conflicts with it (its subnet overlaps, or the same host or
//   VtepMAC now holds another subnet): then it goes at once, since keeping it
//   would point traffic at the wrong place;
// - `wakeAt` says when the next held lease runs out, so the caller reconciles
//   then (the removal happens on time even when etcd stays quiet).

import { cidrsOverlap, formatCidr } from './cidr.js';
import type { Lease } from './types.js';

export interface HeldLease {
  readonly lease: Lease;
  /** Clock time (ms) the lease was first seen missing from the watched set. */
  readonly goneSince: number;
}

export interface GraceState {
  /** Leases that left the watched set and are still within their grace period, by subnet. */
  readonly held: ReadonlyMap<string, HeldLease>;
  /** The leases of the last update (the watched set plus those held), by subnet. */
  readonly last: ReadonlyMap<string, Lease>;
}

export interface GraceResult {
  readonly state: GraceState;
  /** What the data plane should program: the watched set plus the held leases. */
  readonly leases: Lease[];
  /** When the earliest held lease expires (ms, clock time), or undefined when none is held. */
  readonly wakeAt: number | undefined;
}

export const EMPTY_GRACE: GraceState = { held: new Map(), last: new Map() };

const keyOf = (l: Lease): string => formatCidr(l.subnet);
const vtepMacOf = (l: Lease): unknown => l.attrs.backendData['VtepMAC'];

/** Would keeping `old` next to the current leases point traffic at the wrong place? */
function conflicts(old: Lease, current: readonly Lease[]): boolean {
  const mac = vtepMacOf(old);
  return current.some(
    (c) => cidrsOverlap(c.subnet, old.subnet) || c.attrs.publicIP === old.attrs.publicIP || (mac !== undefined && vtepMacOf(c) === mac),
  );
}

/**
 * One step: `current` is the complete watched set (all hosts, this one
 * included), `now` the clock. Returns the set to program and the next state.
 */
export function applyGrace(prev: GraceState, current: readonly Lease[], now: number, graceMs: number): GraceResult {
  const present = new Set(current.map(keyOf));
  const held = new Map<string, HeldLease>();
  const candidates: HeldLease[] = [];
  for (const [key, lease] of prev.last) {
    if (!present.has(key)) candidates.push(prev.held.get(key) ?? { lease, goneSince: now });
  }
  for (const h of candidates) {
    if (now - h.goneSince >= graceMs) continue;
    if (conflicts(h.lease, current)) continue;
    held.set(keyOf(h.lease), h);
  }
  const leases = [...current, ...[...held.values()].map((h) => h.lease)];
  let wakeAt: number | undefined;
  for (const h of held.values()) wakeAt = Math.min(wakeAt ?? Infinity, h.goneSince + graceMs);
  return { state: { held, last: new Map(leases.map((l) => [keyOf(l), l])) }, leases, wakeAt };
}
