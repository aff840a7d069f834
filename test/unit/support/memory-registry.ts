// SubnetRegistry in memory, with etcd's semantics where the logic above cares:
// create-if-absent and compare-mod-revision transactions, leases that expire
// by the fake clock, revisions, and watches. Faults can be injected: make the
// next calls fail as etcd being away would, or freeze watches silently (the
// stuck-watch case the watchdog exists for).

import { WeftError } from '../../../ipam/errors.js';
import { decodeLease, encodeLeaseAttrs, leaseKey, subnetsPrefix } from '../../../ipam/lease-codec.js';
import type {
  LeaseEvent,
  LeaseGrant,
  LeaseList,
  LeaseStats,
  LeaseWatchCallbacks,
  SkippedLease,
  SubnetRegistry,
  WatchHandle,
} from '../../../ipam/subnet-registry.js';
import type { Cidr, Lease, LeaseAttrs } from '../../../ipam/types.js';
import type { FakeClock } from './fake-clock.js';

interface Kv {
  value: string;
  leaseId: string;
  modRevision: number;
}

interface StoreLease {
  ttlMs: number;
  expiresAt: number;
  lost: ((err: Error) => void)[];
  released: boolean;
}

export class MemoryRegistry implements SubnetRegistry {
  readonly kvs = new Map<string, Kv>();
  readonly storeLeases = new Map<string, StoreLease>();
  private revision = 1;
  private nextLeaseId = 100;
  private watchers = new Set<{ cb: LeaseWatchCallbacks; frozen: boolean }>();
  /** How many times list() was called (the cached-choice path must not list). */
  listCalls = 0;
  /** Makes closing a watch never finish (etcd3's cancel() of a watch etcd already ended). */
  hangingClose = false;
  /** Number of upcoming calls that fail as if etcd were unreachable. */
  failNext = 0;
  config: string | undefined;

  constructor(
    readonly prefix: string,
    private readonly clock: FakeClock,
  ) {}

  private check(op: string): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new WeftError('UNAVAILABLE', `etcd ${op} failed: injected`);
    }
  }

  private decode(key: string, kv: Kv): { lease: Lease } | { skipped: SkippedLease } {
    try {
      return { lease: decodeLease(key, kv.value, kv, this.prefix) };
    } catch (e) {
      return { skipped: { key, reason: (e as Error).message } };
    }
  }

  private emit(events: LeaseEvent[]): void {
    for (const w of this.watchers) if (!w.frozen) w.cb.onEvents(events, this.revision);
  }

  /** Writes a raw value the way another etcd client could (garbage included). */
  putRaw(key: string, value: string, leaseId = '0'): void {
    const kv = { value, leaseId, modRevision: ++this.revision };
    this.kvs.set(key, kv);
    const d = this.decode(key, kv);
    this.emit(['lease' in d ? { type: 'put', key, lease: d.lease } : { type: 'invalid', key, reason: d.skipped.reason }]);
  }

  deleteRaw(key: string): void {
    if (!this.kvs.delete(key)) return;
    this.revision++;
    this.emit([{ type: 'delete', key }]);
  }

  /** Expires store leases whose TTL passed without keep-alive, deleting their keys. */
  expire(): void {
    for (const [id, l] of this.storeLeases) {
      if (l.expiresAt > this.clock.now()) continue;
      this.revokeNow(id, new Error('lease expired'));
    }
  }

  private revokeNow(id: string, err: Error): void {
    const l = this.storeLeases.get(id);
    if (l === undefined) return;
    this.storeLeases.delete(id);
    for (const [key, kv] of [...this.kvs]) if (kv.leaseId === id) this.deleteRaw(key);
    if (!l.released) for (const h of l.lost) h(err);
  }

  freezeWatches(): void {
    for (const w of this.watchers) w.frozen = true;
  }

  breakWatches(): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      w.cb.onBroken(new Error('injected watch break'));
    }
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  async getConfig(): Promise<string | undefined> {
    this.check('get config');
    return this.config;
  }

  async putConfig(raw: string): Promise<void> {
    this.check('put config');
    this.config = raw;
  }

  async list(): Promise<LeaseList> {
    this.listCalls++;
    this.check('list');
    const leases: Lease[] = [];
    const keys: string[] = [];
    const skipped: SkippedLease[] = [];
    for (const [key, kv] of this.kvs) {
      const d = this.decode(key, kv);
      if ('lease' in d) {
        leases.push(d.lease);
        keys.push(key);
      } else skipped.push(d.skipped);
    }
    return { leases, keys, skipped, revision: this.revision };
  }

  async grant(ttlSeconds: number): Promise<LeaseGrant> {
    this.check('grant');
    const id = String(this.nextLeaseId++);
    const l: StoreLease = { ttlMs: ttlSeconds * 1000, expiresAt: this.clock.now() + ttlSeconds * 1000, lost: [], released: false };
    this.storeLeases.set(id, l);
    return {
      id,
      onLost: (h) => l.lost.push(h),
      release: () => {
        l.released = true;
      },
      revoke: async () => this.revokeNow(id, new Error('revoked')),
    };
  }

  /** Keeps every unreleased store lease alive, as the etcd client's keep-alive would. */
  keepAlive(): void {
    for (const l of this.storeLeases.values()) if (!l.released) l.expiresAt = this.clock.now() + l.ttlMs;
  }

  /** Revokes a store lease as an operator or etcd would: its keys vanish, holders hear 'lost'. */
  loseLease(id: string): void {
    this.revokeNow(id, new Error('injected lease loss'));
  }

  async create(subnet: Cidr, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined> {
    this.check('create');
    const key = leaseKey(this.prefix, subnet);
    if (this.kvs.has(key)) return undefined;
    this.putRaw(key, encodeLeaseAttrs(attrs), leaseId);
    return this.revision;
  }

  async rebind(lease: Lease, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined> {
    this.check('rebind');
    const key = leaseKey(this.prefix, lease.subnet);
    if (this.kvs.get(key)?.modRevision !== lease.modRevision) return undefined;
    this.putRaw(key, encodeLeaseAttrs(attrs), leaseId);
    return this.revision;
  }

  async remove(subnet: Cidr, leaseId: string): Promise<boolean> {
    this.check('remove');
    const key = leaseKey(this.prefix, subnet);
    if (this.kvs.get(key)?.leaseId !== leaseId) return false;
    this.deleteRaw(key);
    return true;
  }

  async revokeId(leaseId: string): Promise<void> {
    this.check('revoke');
    this.revokeNow(leaseId, new Error('revoked'));
  }

  async watch(_from: number, cb: LeaseWatchCallbacks): Promise<WatchHandle> {
    this.check('watch');
    const w = { cb, frozen: false };
    this.watchers.add(w);
    return {
      close: () => {
        this.watchers.delete(w);
        return this.hangingClose ? new Promise<void>(() => undefined) : Promise.resolve();
      },
    };
  }

  async stats(): Promise<LeaseStats> {
    this.check('stats');
    let maxModRevision = 0;
    for (const kv of this.kvs.values()) maxModRevision = Math.max(maxModRevision, kv.modRevision);
    return { count: this.kvs.size, maxModRevision, revision: this.revision };
  }

  close(): void {}

  get subnetsPrefix(): string {
    return subnetsPrefix(this.prefix);
  }
}
