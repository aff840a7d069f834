// The DNS record set as a CRDT: a last-writer-wins map keyed by
// (owner, name, container id, address). Each entry holds a version (a hybrid
// clock value, see hybrid-clock.ts) and whether it is a tombstone. Merging keeps,
// per key, the entry with the higher (version, tombstone) pair: a total order,
// so merge is commutative, associative and idempotent and every agent ends with
// the same set whatever the order, duplication or loss (repaired by push-pull)
// of what it receives. Only the owner writes its keys, so two different
// writes never carry the same version for one key; the tombstone tie-break
// only makes the order total.
//
// Tombstones are dropped after a bounded time (`collect`). A stale live entry
// that arrives after its tombstone was collected cannot come back for good: its
// owner answers it with a fresh tombstone (record-store.ts), and a dead owner's
// entries are not answered anyway.

export interface DnsRecord {
  /** Relative to the cluster domain, lower case ("web", "pod.ns"). */
  readonly name: string;
  /** IPv4 or IPv6, canonical text. */
  readonly address: string;
  /** The MemberId (public IP) of the host whose agent registered it. */
  readonly owner: string;
  /** The attachment's container ID, or "static" for `weft dns add`. */
  readonly containerId: string;
  readonly version: number;
  readonly deleted: boolean;
}

export type RecordKey = string;

export function recordKey(r: Pick<DnsRecord, 'owner' | 'name' | 'containerId' | 'address'>): RecordKey {
  return `${r.owner}\u0000${r.name}\u0000${r.containerId}\u0000${r.address}`;
}

/** Whether `a` replaces `b` for the same key: the higher version, a tombstone on a tie. */
export function supersedes(a: DnsRecord, b: DnsRecord): boolean {
  return a.version > b.version || (a.version === b.version && a.deleted && !b.deleted);
}

export class RecordSet {
  private readonly entries = new Map<RecordKey, DnsRecord>();

  /** Merges one entry; true when it changed the set. */
  merge(r: DnsRecord): boolean {
    const key = recordKey(r);
    const have = this.entries.get(key);
    if (have !== undefined && !supersedes(r, have)) return false;
    this.entries.set(key, r);
    return true;
  }

  get(key: RecordKey): DnsRecord | undefined {
    return this.entries.get(key);
  }

  /** Every entry, tombstones included (the state that push-pull sends). */
  all(): DnsRecord[] {
    return [...this.entries.values()];
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops every entry, live or tombstone, of these owners; returns how many. */
  dropOwners(owners: ReadonlySet<string>): number {
    let n = 0;
    for (const [k, r] of this.entries) {
      if (owners.has(r.owner)) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Drops tombstones written before `beforeVersion`; returns how many. */
  collect(beforeVersion: number): number {
    let n = 0;
    for (const [k, r] of this.entries) {
      if (r.deleted && r.version < beforeVersion) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }
}

/** The merge of two states as plain lists (for tests and tools): the same result in either order. */
export function mergeLists(a: readonly DnsRecord[], b: readonly DnsRecord[]): DnsRecord[] {
  const s = new RecordSet();
  for (const r of a) s.merge(r);
  for (const r of b) s.merge(r);
  return s.all();
}
