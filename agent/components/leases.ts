// The control-plane component: waits for the network config, watches the
// lease set (ipam/lease-watcher), then acquires this host's subnet lease
// (flannel's order, in ipam/subnet-manager), choosing from the set the
// watcher holds rather than listing etcd per attempt, and writes each fact
// into the node state.
// What the lease publishes in `BackendData` comes from sources other
// components add (the data plane's VTEP MAC, gossip's port), so a new part
// announces itself to its peers without this file knowing it.

import type { Logger } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import { formatCidr } from '../../ipam/cidr.js';
import { LeaseWatcher } from '../../ipam/lease-watcher.js';
import { SubnetManager } from '../../ipam/subnet-manager.js';
import type { SubnetRegistry } from '../../ipam/subnet-registry.js';
import type { NetworkConfig } from '../../ipam/types.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { waitForNetworkConfig } from '../network-config-source.js';
import { previousSubnet } from '../state.js';

export type LeaseDataSource = (cfg: NetworkConfig) => Promise<Record<string, unknown>>;

export interface LeasesOptions {
  readonly state: NodeState;
  readonly registry: SubnetRegistry;
  readonly prefix: string;
  readonly stateDir: string;
  readonly subnetFile: string;
  readonly ttlSeconds: number;
  readonly watchCheckIntervalMs: number;
  readonly releaseOnExit: boolean;
  readonly log: Logger;
  readonly logFor: (component: string) => Logger;
  /** Called with an error that ends the agent (an invalid config). */
  readonly fail: (e: unknown) => void;
}

export class LeasesComponent implements Component {
  readonly name = 'leases';
  private readonly stopping = new AbortController();
  private readonly sources: LeaseDataSource[] = [];
  private manager: SubnetManager | undefined;
  private watcher: LeaseWatcher | undefined;
  private readonly leaseGate;
  private readonly listGate;

  constructor(private readonly o: LeasesOptions) {
    this.leaseGate = o.state.gate('subnet lease');
    this.listGate = o.state.gate('lease list');
  }

  /** Adds fields to this host's `BackendData`; call before start(). */
  addLeaseData(source: LeaseDataSource): void {
    this.sources.push(source);
  }

  async start(): Promise<void> {
    this.run().catch((e: unknown) => {
      if (!this.stopping.signal.aborted) this.o.fail(e);
    });
  }

  private async run(): Promise<void> {
    const { state, log } = this.o;
    const cfg = await waitForNetworkConfig(this.o.registry, this.o.prefix, systemClock, log, this.stopping.signal);
    log.info({ network: formatCidr(cfg.network), subnetLen: cfg.subnetLen, backend: cfg.backend.type }, 'network config');
    state.update('config', { config: cfg });
    const parts = await Promise.all(this.sources.map((s) => s(cfg)));
    if (this.stopping.signal.aborted) return;
    const backendData = Object.assign({}, ...parts) as Record<string, unknown>;

    // The watcher starts first: the subnet is chosen from the set it holds (no list per acquire).
    const watcher = new LeaseWatcher({ registry: this.o.registry, clock: systemClock, log: this.o.logFor('watch'), checkIntervalMs: this.o.watchCheckIntervalMs });
    this.watcher = watcher;
    watcher.subscribe((leases, revision) => {
      this.manager?.verify(leases);
      log.debug({ leases: leases.length, revision }, 'lease set');
      this.listGate.open();
      state.update('leases', { leases, leasesKnown: true, revision });
    });
    if (this.stopping.signal.aborted) return;
    watcher.start();
    await watcher.ready();

    const manager = new SubnetManager({
      known: () => watcher.known(),
      registry: this.o.registry,
      clock: systemClock,
      log: this.o.logFor('subnets'),
      random: Math.random,
      config: cfg,
      attrs: { publicIP: state.underlay.publicIP, backendType: cfg.backend.type, backendData },
      ttlSeconds: this.o.ttlSeconds,
      previous: await previousSubnet(this.o.stateDir, this.o.subnetFile),
    });
    this.manager = manager;
    manager.onChange((held) => {
      this.leaseGate.open();
      state.update('lease', { lease: held });
    });
    await manager.acquire();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.o.releaseOnExit) {
      await this.manager?.release().catch((e: unknown) => this.o.log.error({ err: (e as Error).message }, 'could not release the subnet lease'));
    } else {
      this.manager?.stop();
    }
    await this.watcher?.stop();
  }
}
