// Holds this host's subnet lease: acquires it in flannel's order (the lease
// already under our public IP, then the subnet we had before, then a random
// free one), keeps it alive, and gets it back when etcd reports it lost.
//
// Races are normal, not fatal: the key is created in a transaction that only
// succeeds if it is absent, and a lost race excludes that subnet and chooses
// again (flannel exits there; weft must not). etcd being away is normal too:
// every etcd failure is retried with backoff until stop().
//
// The choice is made from the lease set the watcher already holds (`known`),
// not from a fresh list per attempt: flannel lists every lease on every
// acquire, which at thousands of hosts costs more than the acquisition itself.
// A stale set is safe because the create-if-absent transaction stays the only
// arbiter; a subnet lost to a race is excluded (the winner's key is then
// known) and the next choice comes from the same set. Only when there is no
// set yet, or a rebind lost (our own key changed under us) or the network
// looks full, is etcd listed.

import type { Logger } from 'pino';
import { backoffMs, type Clock } from './clock.js';
import { formatCidr } from './cidr.js';
import { isWeftError, WeftError } from './errors.js';
import { chooseSubnet, indexTaken, type TakenIndex } from './subnet-choice.js';
import type { LeaseGrant, SubnetRegistry } from './subnet-registry.js';
import type { Cidr, Lease, LeaseAttrs, NetworkConfig } from './types.js';
import { etcdFailureKind } from './etcd-failure.js';

export interface SubnetManagerOptions {
  readonly registry: SubnetRegistry;
  readonly clock: Clock;
  readonly log: Logger;
  readonly random: () => number;
  readonly config: NetworkConfig;
  readonly attrs: LeaseAttrs;
  readonly ttlSeconds: number;
  /** The subnet this host had before (state dir or subnet file), if known. */
  readonly previous?: Cidr;
  /** The watched lease set, or undefined while the watcher has not listed yet (then etcd is listed). */
  readonly known?: () => readonly Lease[] | undefined;
  // (The array known() returns must not be changed afterwards: choices index it once.)
}

/**
 * Indexes of watched sets, shared by every manager choosing from the same set
 * (a watcher's snapshot is a new array at each change and never mutated).
 * Sorting 5000 leases per choice cost more than the etcd round trips.
 */
const takenIndexes = new WeakMap<readonly Lease[], TakenIndex>();

function indexOf(config: NetworkConfig, known: readonly Lease[]): TakenIndex {
  let index = takenIndexes.get(known);
  if (index === undefined || index.config !== config) {
    index = indexTaken(config, known);
    takenIndexes.set(known, index);
  }
  return index;
}

export type LeaseChangeListener = (lease: Lease, before: Lease | undefined) => void;

export class SubnetManager {
  private lease: Lease | undefined;
  private grant: LeaseGrant | undefined;
  private readonly listeners: LeaseChangeListener[] = [];
  private readonly stopped = new AbortController();
  private previous: Cidr | undefined;
  /** Losses so far: each waits longer, so two agents misconfigured with one public IP cannot spin taking the lease from each other. */
  private losses = 0;
  private acquiring = false;

  constructor(private readonly opts: SubnetManagerOptions) {
    this.previous = opts.previous;
  }

  current(): Lease | undefined {
    return this.lease;
  }

  /** Called after the first acquisition and whenever a lost lease is replaced. */
  onChange(listener: LeaseChangeListener): void {
    this.listeners.push(listener);
  }

  /** Acquires a subnet; retries while etcd is unreachable or the network is full, until stop(). */
  async acquire(): Promise<Lease> {
    this.acquiring = true;
    try {
      return await this.acquireLoop();
    } finally {
      this.acquiring = false;
    }
  }

  /**
   * Checks our lease against the watched set. etcd3 sends keep-alives only
   * every TTL/3 (8 h by default), so a key deleted by hand or a lease revoked
   * would go unnoticed for hours; the watch sees it at once.
   */
  verify(leases: readonly Lease[]): void {
    const { lease, grant } = this;
    if (lease === undefined || grant === undefined || this.acquiring || this.stopped.signal.aborted) return;
    const ours = leases.find((l) => l.subnet.addr === lease.subnet.addr && l.subnet.len === lease.subnet.len);
    if (ours !== undefined && ours.leaseId === grant.id && ours.attrs.publicIP === lease.attrs.publicIP) return;
    const why = ours === undefined ? 'our subnet key vanished from etcd' : 'our subnet key was rewritten by someone else';
    // The grant may still be alive: revoke it so it does not linger without keys.
    void this.opts.registry.revokeId(grant.id).catch(() => undefined);
    grant.release();
    this.lost(grant, new Error(why));
  }

  private async acquireLoop(): Promise<Lease> {
    const { registry, clock, log, config, attrs, random, ttlSeconds } = this.opts;
    const exclude: Cidr[] = [];
    let grant: LeaseGrant | undefined;
    /** Set after a lost rebind or a full network: the watched set may be behind, ask etcd. */
    let mustList = false;
    for (let attempt = 0; ; attempt++) {
      if (this.stopped.signal.aborted) throw new WeftError('UNAVAILABLE', 'stopped before a subnet was acquired');
      try {
        const cached = mustList ? undefined : this.opts.known?.();
        // Grant and list are independent: one round trip, not two. A grant that
        // succeeds while the list fails is kept in `grant`, so the catch releases it.
        const granting = grant ?? registry.grant(ttlSeconds).then((g) => (grant = g));
        const [held, leases] = await Promise.all([granting, cached ?? registry.list().then((l) => l.leases)]);
        mustList = false;
        const taken = cached !== undefined ? indexOf(config, cached) : undefined;
        const choice = chooseSubnet({ config, leases, publicIP: attrs.publicIP, previous: this.previous, exclude, random, taken });
        let subnet: Cidr | undefined;
        let modRevision: number | undefined;
        if (choice.kind === 'existing') {
          subnet = choice.lease.subnet;
          modRevision = await registry.rebind(choice.lease, attrs, held.id);
          if (modRevision !== undefined && choice.lease.leaseId !== held.id) {
            // The key now hangs off our new grant; the old one (a previous
            // incarnation's) would otherwise live on until its TTL.
            await registry.revokeId(choice.lease.leaseId).catch((e: unknown) =>
              log.warn({ err: (e as Error).message, leaseId: choice.lease.leaseId }, 'could not revoke the previous etcd lease'),
            );
          }
        } else if (choice.kind === 'previous' || choice.kind === 'random') {
          subnet = choice.subnet;
          modRevision = await registry.create(subnet, attrs, held.id);
          if (modRevision === undefined) {
            log.info({ subnet: formatCidr(subnet) }, 'another host took this subnet first; choosing again');
            exclude.push(subnet);
            continue;
          }
        } else {
          if (cached !== undefined) {
            // The watched set may lag behind a release: confirm with etcd before waiting.
            mustList = true;
            exclude.length = 0;
            continue;
          }
          log.error(
            { network: formatCidr(config.network), subnets: choice.subnets, taken: choice.taken, leases: leases.length },
            `no free subnet left in the network: all ${choice.subnets} subnets of ${formatCidr(config.network)} (SubnetLen ${config.subnetLen}, SubnetMin..SubnetMax) are leased; waiting for one (enlarge Network, lower SubnetLen or widen SubnetMin/SubnetMax)`,
          );
          exclude.length = 0;
          await clock.sleep(backoffMs(attempt, 1000, 30_000), this.stopped.signal);
          continue;
        }
        if (modRevision === undefined) {
          // Our own key changed between list and rebind: someone else is writing it
          // (another agent with our public IP?). Do not fight over it; choose again.
          mustList = true;
          if (cached !== undefined) continue; // the watched set was behind; ask etcd before giving the key up
          log.warn({ subnet: formatCidr(subnet) }, 'our lease changed while we took it back; choosing again');
          exclude.push(subnet);
          continue;
        }
        const lease: Lease = { subnet, attrs, leaseId: held.id, modRevision };
        this.hold(lease, held, choice.kind);
        return lease;
      } catch (e) {
        if (!isWeftError(e, 'UNAVAILABLE')) throw e;
        log.warn({ err: e.message, attempt }, `cannot reach etcd to acquire a subnet (${etcdFailureKind(e)}); retrying`);
        // A grant from before an outage may have expired meanwhile: get a fresh one.
        grant?.release();
        grant = undefined;
        await clock.sleep(backoffMs(attempt), this.stopped.signal);
      }
    }
  }

  private hold(lease: Lease, grant: LeaseGrant, how: string): void {
    const before = this.lease;
    this.lease = lease;
    this.grant = grant;
    this.previous = lease.subnet;
    this.opts.log.info({ subnet: formatCidr(lease.subnet), leaseId: grant.id, how }, 'subnet lease held');
    grant.onLost((err) => this.lost(grant, err));
    for (const l of this.listeners) l(lease, before);
  }

  private lost(grant: LeaseGrant, err: Error): void {
    if (this.stopped.signal.aborted || grant !== this.grant) return;
    this.opts.log.error(
      { subnet: this.lease ? formatCidr(this.lease.subnet) : undefined, err: err.message },
      'SUBNET LEASE LOST: etcd no longer holds our lease; re-acquiring the same subnet if it is still free',
    );
    this.grant = undefined;
    const delay = backoffMs(this.losses++, 500, 30_000);
    if (this.losses > 3) {
      this.opts.log.error({ losses: this.losses, publicIP: this.opts.attrs.publicIP }, 'subnet lease lost repeatedly: does another agent run with the same public IP?');
    }
    this.acquiring = true;
    void (async () => {
      await this.opts.clock.sleep(delay, this.stopped.signal);
      await this.acquire();
    })().catch((e: unknown) => {
      if (!this.stopped.signal.aborted) this.opts.log.error({ err: (e as Error).message }, 'could not re-acquire a subnet');
    });
  }

  /** Stops keeping the lease alive; the key stays until its TTL, so a restart gets it back. */
  stop(): void {
    this.stopped.abort();
    this.grant?.release();
  }

  /** Gives the subnet back: deletes the key and revokes the etcd lease. */
  async release(): Promise<void> {
    const { lease, grant } = this;
    this.stop();
    if (lease === undefined || grant === undefined) return;
    await this.opts.registry.remove(lease.subnet, grant.id);
    await grant.revoke();
    this.opts.log.info({ subnet: formatCidr(lease.subnet) }, 'subnet lease released');
  }
}
