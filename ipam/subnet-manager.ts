// Holds this host's subnet lease: acquires it in flannel's order (the lease
// already under our public IP, then the subnet we had before, then a random
// free one), keeps it alive, and gets it back when etcd reports it lost.
//
// Races are normal, not fatal: the key is created in a transaction that only
// succeeds if it is absent, and a lost race excludes that subnet and chooses
// again (flannel exits there; weft must not). etcd being away is normal too:
// every etcd failure is retried with backoff until stop().

import type { Logger } from 'pino';
import { backoffMs, type Clock } from './clock.js';
import { formatCidr } from './cidr.js';
import { isWeftError, WeftError } from './errors.js';
import { chooseSubnet } from './subnet-choice.js';
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
    for (let attempt = 0; ; attempt++) {
      if (this.stopped.signal.aborted) throw new WeftError('UNAVAILABLE', 'stopped before a subnet was acquired');
      try {
        grant ??= await registry.grant(ttlSeconds);
        const list = await registry.list();
        const choice = chooseSubnet({ config, leases: list.leases, publicIP: attrs.publicIP, previous: this.previous, exclude, random });
        let subnet: Cidr | undefined;
        let modRevision: number | undefined;
        if (choice.kind === 'existing') {
          subnet = choice.lease.subnet;
          modRevision = await registry.rebind(choice.lease, attrs, grant.id);
          if (modRevision !== undefined && choice.lease.leaseId !== grant.id) {
            // The key now hangs off our new grant; the old one (a previous
            // incarnation's) would otherwise live on until its TTL.
            await registry.revokeId(choice.lease.leaseId).catch((e: unknown) =>
              log.warn({ err: (e as Error).message, leaseId: choice.lease.leaseId }, 'could not revoke the previous etcd lease'),
            );
          }
        } else if (choice.kind === 'previous' || choice.kind === 'random') {
          subnet = choice.subnet;
          modRevision = await registry.create(subnet, attrs, grant.id);
          if (modRevision === undefined) {
            log.info({ subnet: formatCidr(subnet) }, 'another host took this subnet first; choosing again');
            exclude.push(subnet);
            continue;
          }
        } else {
          log.error({ network: formatCidr(config.network), leases: list.leases.length }, 'no free subnet left in the network; waiting for one (enlarge Network or lower SubnetLen)');
          exclude.length = 0;
          await clock.sleep(backoffMs(attempt, 1000, 30_000), this.stopped.signal);
          continue;
        }
        if (modRevision === undefined) {
          // Our own key changed between list and rebind: someone else is writing it
          // (another agent with our public IP?). Do not fight over it; choose again.
          log.warn({ subnet: formatCidr(subnet) }, 'our lease changed while we took it back; choosing again');
          exclude.push(subnet);
          continue;
        }
        const lease: Lease = { subnet, attrs, leaseId: grant.id, modRevision };
        this.hold(lease, grant, choice.kind);
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
