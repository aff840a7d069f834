// The record store: this agent's view of the cluster's DNS records, and the
// gossip delegate that keeps it in step with every other agent.
//
// - The set itself is the CRDT in record-set.ts; this class adds who may
//   write what. This host writes only its own keys (owner = our MemberId), with
//   versions from a hybrid clock, and keeps `desired`, the records it should
//   have now (from its attachments and `weft dns add`).
// - The owner is the authority on its keys: an entry of ours arriving from a
//   peer that contradicts `desired` (a record from before a restart, or one
//   resurrected after its tombstone was collected) is answered with a newer
//   write of what we want, so the cluster converges on our truth.
// - Visibility is separate from the set: entries of a member gossip declares
//   dead (or left) stay in the set but leave the answers, and return when it
//   is alive again. After an hour dead they are dropped, and refused from
//   peers while it stays dead, so hosts that never come back (a scaled-down
//   node pool) do not pile up in every agent; one that does come back
//   re-announces its records, as after any restart, and push-pull carries
//   them to everyone.
//
// The server reads through `lookup` and `reverse`, served from an index that
// is rebuilt only after a change.

import type { GossipDelegate, MemberId, MemberInfo, MemberState } from '../gossip/types.js';
import { HybridClock, TICKS_PER_MS } from './hybrid-clock.js';
import { decodeRecords, encodeMessages, encodeRecords } from './record-codec.js';
import { type DnsRecord, type RecordKey, RecordSet, recordKey, supersedes } from './record-set.js';

export const STATIC_CONTAINER = 'static';

export interface RecordStoreOptions {
  readonly localId: MemberId;
  /** Sends a small message to every peer (gossip's broadcast). Set later with `setBroadcast` when gossip starts after the store. */
  readonly broadcast?: (msg: Uint8Array) => void;
  readonly wallMs?: () => number;
  /** How long a tombstone is kept before it is collected. */
  readonly tombstoneTtlMs?: number;
  /** How long the entries of a dead (or left) member are kept, hidden, before they are dropped. */
  readonly deadOwnerTtlMs?: number;
}

export interface ListedRecord extends DnsRecord {
  /** False while its owner is dead (kept, but not answered). */
  readonly visible: boolean;
}

export interface StoreCounters {
  merged: number;
  rejected: number;
  reasserted: number;
  collected: number;
  /** Entries dropped, or refused from peers, because their owner has been dead longer than deadOwnerTtlMs. */
  reaped: number;
}

export const DEFAULT_TOMBSTONE_TTL_MS = 10 * 60 * 1000;
export const DEFAULT_DEAD_OWNER_TTL_MS = 60 * 60 * 1000;

const HIDDEN: ReadonlySet<MemberState> = new Set(['dead', 'left']);

export class RecordStore implements GossipDelegate {
  private readonly set = new RecordSet();
  private readonly clock: HybridClock;
  private readonly wallMs: () => number;
  private readonly desired = new Map<RecordKey, Omit<DnsRecord, 'version' | 'deleted'>>();
  private readonly memberStates = new Map<MemberId, MemberState>();
  /** When each member now dead (or left) was first seen so, by our wall clock. */
  private readonly deadSince = new Map<MemberId, number>();
  private readonly listeners = new Set<() => void>();
  private broadcastFn: ((msg: Uint8Array) => void) | undefined;
  private index: { byName: Map<string, string[]>; byAddress: Map<string, string[]>; between: Set<string> } | undefined;
  readonly counters: StoreCounters = { merged: 0, rejected: 0, reasserted: 0, collected: 0, reaped: 0 };
  /** Grows on every change of what is answered (the DNS reply cache keys on it). */
  generation = 0;

  constructor(private readonly o: RecordStoreOptions) {
    this.wallMs = o.wallMs ?? Date.now;
    this.clock = new HybridClock(this.wallMs);
    this.broadcastFn = o.broadcast;
  }

  get localId(): MemberId {
    return this.o.localId;
  }

  setBroadcast(fn: (msg: Uint8Array) => void): void {
    this.broadcastFn = fn;
  }

  /** fn() after every change of what is answered. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // ---- local writes

  /** Registers (name, address) for a container of this host; a no-op when already live. */
  add(name: string, address: string, containerId: string): DnsRecord {
    const base = { name, address, owner: this.o.localId, containerId };
    const key = recordKey(base);
    this.desired.set(key, base);
    const have = this.set.get(key);
    if (have !== undefined && !have.deleted) return have;
    return this.write({ ...base, version: this.clock.next(), deleted: false });
  }

  /** Removes one of this host's records (writes a tombstone); false when it was not registered. */
  remove(name: string, address: string, containerId: string): boolean {
    const key = recordKey({ name, address, owner: this.o.localId, containerId });
    const known = this.desired.delete(key);
    const have = this.set.get(key);
    if (have === undefined || have.deleted) return known;
    this.write({ ...have, version: this.clock.next(), deleted: true });
    return true;
  }

  /** This host's live records (what it would re-announce). */
  own(): DnsRecord[] {
    return this.set.all().filter((r) => r.owner === this.o.localId && !r.deleted);
  }

  private write(r: DnsRecord): DnsRecord {
    this.set.merge(r);
    this.changed();
    for (const m of encodeMessages([r])) this.broadcastFn?.(m);
    return r;
  }

  // ---- GossipDelegate

  localState(): Uint8Array {
    return encodeRecords(this.set.all());
  }

  mergeRemoteState(state: Uint8Array, _from: MemberId): void {
    this.mergeBytes(state);
  }

  notifyMessage(msg: Uint8Array, _from: MemberId): void {
    this.mergeBytes(msg);
  }

  notifyMember(member: MemberInfo): void {
    if (member.id === this.o.localId) return;
    const before = this.memberStates.get(member.id);
    this.memberStates.set(member.id, member.state);
    if (!HIDDEN.has(member.state)) this.deadSince.delete(member.id);
    else if (!this.deadSince.has(member.id)) this.deadSince.set(member.id, this.wallMs());
    if ((before !== undefined && HIDDEN.has(before)) !== HIDDEN.has(member.state)) this.changed();
  }

  private mergeBytes(bytes: Uint8Array): void {
    const { records, rejected } = decodeRecords(bytes);
    this.counters.rejected += rejected;
    let changed = false;
    const reassert: DnsRecord[] = [];
    for (const r of records) {
      if (!this.clock.observe(r.version)) {
        this.counters.rejected++;
        continue;
      }
      if (this.reapedOwner(r.owner)) {
        this.counters.reaped++;
        continue;
      }
      if (r.owner === this.o.localId) {
        const answer = this.answerForOwn(r);
        if (answer !== undefined) reassert.push(answer);
        continue;
      }
      if (this.set.merge(r)) {
        changed = true;
        this.counters.merged++;
      }
    }
    if (changed) this.changed();
    for (const r of reassert) {
      this.counters.reasserted++;
      this.write(r);
    }
  }

  /** What we write when a peer tells us about one of our own keys, if anything. */
  private answerForOwn(r: DnsRecord): DnsRecord | undefined {
    const key = recordKey(r);
    const have = this.set.get(key);
    if (have !== undefined && !supersedes(r, have)) return undefined;
    const wanted = this.desired.has(key);
    if (r.deleted === !wanted) {
      // The peer is right about us (e.g. a tombstone we wrote before a restart): adopt it.
      this.set.merge(r);
      return undefined;
    }
    return { ...r, version: this.clock.next(), deleted: !wanted };
  }

  // ---- housekeeping

  private reapedOwner(owner: MemberId): boolean {
    const since = this.deadSince.get(owner);
    return since !== undefined && this.wallMs() - since >= (this.o.deadOwnerTtlMs ?? DEFAULT_DEAD_OWNER_TTL_MS);
  }

  /** Drops tombstones older than the TTL, and every entry of members dead longer than theirs; returns how many tombstones. */
  collect(): number {
    const ttl = this.o.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS;
    const n = this.set.collect((this.wallMs() - ttl) * TICKS_PER_MS);
    this.counters.collected += n;
    const reaped = new Set([...this.deadSince.keys()].filter((m) => this.reapedOwner(m)));
    if (reaped.size > 0) {
      const dropped = this.set.dropOwners(reaped);
      if (dropped > 0) {
        this.counters.reaped += dropped;
        this.changed();
      }
    }
    return n;
  }

  // ---- reading

  private visibleOwner(owner: MemberId): boolean {
    const s = this.memberStates.get(owner);
    return owner === this.o.localId || s === undefined || !HIDDEN.has(s);
  }

  list(): ListedRecord[] {
    return this.set
      .all()
      .map((r) => ({ ...r, visible: !r.deleted && this.visibleOwner(r.owner) }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.address.localeCompare(b.address) || a.owner.localeCompare(b.owner));
  }

  private built(): NonNullable<RecordStore['index']> {
    if (this.index !== undefined) return this.index;
    const byName = new Map<string, string[]>();
    const byAddress = new Map<string, string[]>();
    for (const r of this.set.all()) {
      if (r.deleted || !this.visibleOwner(r.owner)) continue;
      const addrs = byName.get(r.name) ?? [];
      if (!addrs.includes(r.address)) addrs.push(r.address);
      byName.set(r.name, addrs);
      const names = byAddress.get(r.address) ?? [];
      if (!names.includes(r.name)) names.push(r.name);
      byAddress.set(r.address, names);
    }
    for (const v of byName.values()) v.sort();
    for (const v of byAddress.values()) v.sort();
    // "ns" when "pod.ns" exists: a name with no records of its own that still exists (RFC 8020: NODATA, not NXDOMAIN).
    const between = new Set<string>();
    for (const n of byName.keys()) for (let i = n.indexOf('.'); i >= 0; i = n.indexOf('.', i + 1)) between.add(n.slice(i + 1));
    this.index = { byName, byAddress, between };
    return this.index;
  }

  /** The answered addresses of a name (sorted; the server rotates them), undefined when the name has none. */
  lookup(name: string): readonly string[] | undefined {
    return this.built().byName.get(name);
  }

  /** Whether a name without records of its own lies between the domain and a name that has some. */
  isBetween(name: string): boolean {
    return this.built().between.has(name);
  }

  /** The answered names of an address. */
  reverse(address: string): readonly string[] | undefined {
    return this.built().byAddress.get(address);
  }

  /** Number of names answered, and entries held (tombstones and hidden included). */
  stats(): { names: number; entries: number; visible: number; tombstones: number } {
    const all = this.set.all();
    return {
      names: this.built().byName.size,
      entries: all.length,
      visible: all.filter((r) => !r.deleted && this.visibleOwner(r.owner)).length,
      tombstones: all.filter((r) => r.deleted).length,
    };
  }

  private changed(): void {
    this.index = undefined;
    this.generation++;
    for (const fn of this.listeners) fn();
  }
}

