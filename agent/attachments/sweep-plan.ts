// What the attachment sweep frees, decided over plain data (the sweeper in
// ./sweep.ts gathers the data and carries the actions out). Three kinds of
// leftovers that no runtime will ever DEL:
//
//   - an attachment whose network namespace is gone (ctr's detached tasks
//     send no DEL; a /proc/PID/ns/net path vanishes with its process; a
//     /run/netns file unmounted, or left empty as podman's placeholders are)
//     or whose host-side veth is gone (the kernel deletes the pair when the
//     namespace dies; this also catches a /proc/PID path whose PID was reused
//     and so still names a live namespace, just not the container's)
//     → detach it (address, veth, record, DNS name);
//   - a reservation without an attachment record (the agent was killed
//     between "reserve" and "record") → release it;
//   - a weft veth (encap/plumb's name pattern, never anyone else's link)
//     that no record owns (killed between "plumb" and "record") → delete it.
//
// An attach builds reserve → plumb → record under its key's lock, so what it
// is building is never freed: keys with an operation in flight are skipped; a
// reservation made by this agent process is only an orphan once it is older
// than the grace period (one made before the process started cannot be in
// flight); a veth is spared while any record, in-flight key or reservation
// maps to its name (a released reservation's detach deletes that veth).
// Keys a runtime manages itself (`runtimeManaged`: Docker's, whose IPAM holds
// addresses without records and whose sandbox paths the agent may not see):
// their reservations are never released here, and their attachments are freed
// only when the veth is gone, never for a namespace path the agent cannot see.
// The kernel is listed BEFORE the records and reservations are read: a veth
// seen in the kernel was made after its reservation, so the reservation is in
// the later snapshot unless it was released (then the veth is going too).
// The executor re-checks every action under the key's lock (service.detachIf).

import { hostIfNameFor } from '../../encap/plumb.js';
import type { Reservation } from '../../ipam/address-pool.js';
import type { Attachment } from '../api/types.js';
import { keyString } from './store.js';
import type { AttachmentKey } from './validate.js';

export type SweptRecord = Pick<Attachment, 'containerId' | 'ifname' | 'netns' | 'hostIfName' | 'createdAt'>;
export type SweptReservation = Pick<Reservation, 'containerId' | 'ifname' | 'ip' | 'reservedAt'>;

/** What the kernel showed, gathered before the records and reservations were read. */
export interface KernelView {
  /** Namespace paths (of records) that name no network namespace any more. */
  readonly goneNetns: ReadonlySet<string>;
  /** weft's host-side veths (names matching encap/plumb's pattern) in the host namespace. */
  readonly veths: ReadonlySet<string>;
}

export interface SweepInput extends KernelView {
  readonly records: readonly SweptRecord[];
  readonly reservations: readonly SweptReservation[];
  /** Every key with an attach/detach/check in flight. */
  readonly busy: readonly AttachmentKey[];
  /** containerId prefixes of keys a runtime manages itself (see the header). */
  readonly runtimeManaged?: readonly string[];
  /** Epoch ms now, and when this agent process started (its clock). */
  readonly now: number;
  readonly startedAt: number;
  readonly graceMs: number;
}

export type SweepAction =
  | { readonly kind: 'detach'; readonly key: AttachmentKey; readonly createdAt: string; readonly reasons: readonly string[] }
  | { readonly kind: 'release'; readonly key: AttachmentKey; readonly ip: string; readonly reservedAt: string; readonly reason: string }
  | { readonly kind: 'delete-veth'; readonly name: string; readonly reason: string };

export type GonePart = 'netns' | 'veth';

export function isManaged(k: AttachmentKey, prefixes: readonly string[] | undefined): boolean {
  return prefixes?.some((p) => k.containerId.startsWith(p)) ?? false;
}

/**
 * What of a record is gone (empty when it looks alive); `weft ps` shows it. The namespace path
 * of a runtime-managed key does not count (the agent may not see it).
 */
export function goneParts(r: SweptRecord, view: KernelView, runtimeManaged?: readonly string[]): GonePart[] {
  const netnsGone = view.goneNetns.has(r.netns) && !isManaged(r, runtimeManaged);
  return [...(netnsGone ? ['netns' as const] : []), ...(view.veths.has(r.hostIfName) ? [] : ['veth' as const])];
}

function describeGone(r: SweptRecord, part: GonePart): string {
  return part === 'netns' ? `network namespace ${r.netns} is gone` : `host veth ${r.hostIfName} is gone`;
}

function key(k: AttachmentKey): AttachmentKey {
  return { containerId: k.containerId, ifname: k.ifname };
}

/** Whether a reservation without a record can no longer belong to an attach in progress. */
export function isOrphanAge(reservedAt: string, now: number, startedAt: number, graceMs: number): boolean {
  const t = Date.parse(reservedAt);
  // An unreadable time is old: keeping it forever would leak the address.
  if (Number.isNaN(t)) return true;
  return t < startedAt || now - t >= graceMs;
}

export function planSweep(input: SweepInput): SweepAction[] {
  const actions: SweepAction[] = [];
  const recorded = new Set(input.records.map(keyString));
  const busy = new Set(input.busy.map(keyString));
  for (const r of input.records) {
    if (busy.has(keyString(r))) continue;
    const gone = goneParts(r, input, input.runtimeManaged);
    if (gone.length > 0) actions.push({ kind: 'detach', key: key(r), createdAt: r.createdAt, reasons: gone.map((g) => describeGone(r, g)) });
  }
  for (const r of input.reservations) {
    if (recorded.has(keyString(r)) || busy.has(keyString(r))) continue;
    if (isManaged(r, input.runtimeManaged)) continue;
    if (!isOrphanAge(r.reservedAt, input.now, input.startedAt, input.graceMs)) continue;
    actions.push({ kind: 'release', key: key(r), ip: r.ip, reservedAt: r.reservedAt, reason: `address ${r.ip} reserved at ${r.reservedAt} has no attachment record` });
  }
  const owned = new Set<string>([
    ...input.records.map((r) => r.hostIfName),
    ...input.busy.map((k) => hostIfNameFor(k.containerId, k.ifname)),
    ...input.reservations.map((r) => hostIfNameFor(r.containerId, r.ifname)),
  ]);
  for (const name of [...input.veths].sort()) {
    if (!owned.has(name)) actions.push({ kind: 'delete-veth', name, reason: `veth ${name} belongs to no attachment record or reservation` });
  }
  return actions;
}
