// The one interface through which the control plane talks to its store.
// `EtcdSubnetRegistry` implements it over etcd; unit tests implement it in
// memory. Everything that decides (which subnet, when to retry, what a host
// should see) sits above it in pure or easily driven code; everything below it
// is a single etcd call, so that a failure maps to exactly one place.

import type { Cidr, Lease, LeaseAttrs } from './types.js';

/** A key under `subnets/` that could not be decoded: skipped, never fatal. */
export interface SkippedLease {
  readonly key: string;
  readonly reason: string;
}

export interface LeaseList {
  /** Decoded leases with the etcd key each came from. */
  readonly leases: Lease[];
  readonly keys: string[];
  readonly skipped: SkippedLease[];
  /** The store revision at which this list is consistent. */
  readonly revision: number;
}

export type LeaseEvent =
  | { readonly type: 'put'; readonly key: string; readonly lease: Lease }
  | { readonly type: 'invalid'; readonly key: string; readonly reason: string }
  | { readonly type: 'delete'; readonly key: string };

export interface LeaseWatchCallbacks {
  /** One batch of events, all at or below `revision`. */
  onEvents(events: LeaseEvent[], revision: number): void;
  /** The watch ended or was cancelled (compaction, etcd restart): re-list. */
  onBroken(err: Error): void;
}

export interface WatchHandle {
  close(): Promise<void>;
}

/** A store-side lease (etcd lease) that keeps subnet keys alive. */
export interface LeaseGrant {
  readonly id: string;
  /** Called once when the grant is lost (expired, revoked, or keep-alive refused). */
  onLost(handler: (err: Error) => void): void;
  /** Stops keeping it alive locally; the keys stay until the TTL runs out. */
  release(): void;
  /** Revokes it in the store: every key bound to it disappears. */
  revoke(): Promise<void>;
}

/** Cheap numbers the watch watchdog compares against what the watch delivered. */
export interface LeaseStats {
  /** Number of keys under `subnets/` now. */
  readonly count: number;
  /** The highest mod revision among the keys under `subnets/` (0 when there are none). */
  readonly maxModRevision: number;
  readonly revision: number;
}

export interface SubnetRegistry {
  /** The raw text at `<prefix>/config`, or undefined when absent. */
  getConfig(): Promise<string | undefined>;
  putConfig(raw: string): Promise<void>;
  list(): Promise<LeaseList>;
  grant(ttlSeconds: number): Promise<LeaseGrant>;
  /**
   * Creates the subnet key bound to `leaseId` only if no such key exists.
   * Returns the key's mod revision, or undefined when someone else holds it.
   */
  create(subnet: Cidr, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined>;
  /**
   * Rewrites an existing key (ours by public IP) only if nobody changed it
   * since we read it. Returns the new mod revision, or undefined on a race.
   */
  rebind(lease: Lease, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined>;
  /** Deletes the subnet key only if it is still bound to `leaseId`. */
  remove(subnet: Cidr, leaseId: string): Promise<boolean>;
  /** Revokes a store lease by ID (a previous incarnation's); absent is fine. */
  revokeId(leaseId: string): Promise<void>;
  watch(fromRevision: number, callbacks: LeaseWatchCallbacks): Promise<WatchHandle>;
  stats(): Promise<LeaseStats>;
  close(): void;
}
