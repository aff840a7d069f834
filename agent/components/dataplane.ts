// The data-plane component: creates the backend the network config names,
// contributes its lease data (the VTEP MAC), and reconciles the kernel to the
// whole picture (this host's lease and every other) on every lease change and
// every --resync-interval, which heals what someone changed by hand (the
// masquerade table of --ip-masq included: checked on every resync). It never
// reconciles before the first complete lease list: a restarted agent would
// otherwise remove every remote route for a moment. A remote whose key
// vanished stays programmed for --lease-grace (ipam/lease-grace.ts), so a key
// its owner re-creates costs no packet.

import type { Logger } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import { applyGrace, EMPTY_GRACE } from '../../ipam/lease-grace.js';
import { cidrEquals } from '../../ipam/cidr.js';
import type { NetworkConfig } from '../../ipam/types.js';
import { overlayMtu, type Backend } from '../../encap/backend.js';
import { MASQ_TABLE, reconcileMasquerade } from '../../encap/masquerade.js';
import { openNetlink, type Netlink } from '../../encap/netlink/index.js';
import { procSysctl } from '../../encap/sysctl.js';
import { createUdpBackend, type UdpKeySource } from '../../encap/udp/index.js';
import { createVxlanBackend } from '../../encap/vxlan/index.js';
import type { Component } from '../core/component.js';
import type { NodeState, Underlay } from '../core/node-state.js';

export interface DataplaneOptions {
  readonly state: NodeState;
  readonly ipMasq: boolean;
  readonly resyncMs: number;
  /** How long a remote lease whose key vanished stays programmed (--lease-grace). */
  readonly graceMs: number;
  readonly log: Logger;
  readonly logFor: (component: string) => Logger;
  /** Persistent state (the udp backend's nonce epoch). */
  readonly stateDir: string;
  /** The keyring (opened on first use: only a sealed udp network needs it). */
  readonly keys: () => Promise<UdpKeySource>;
}

/** The backend a config names; one network, one backend. */
export async function createBackend(
  cfg: NetworkConfig,
  netlink: Netlink,
  underlay: Underlay,
  log: Logger,
  udp: { readonly stateDir: string; readonly keys: () => Promise<UdpKeySource> },
): Promise<Backend> {
  if (cfg.backend.type === 'udp') {
    const keys = cfg.backend.encrypt === true ? await udp.keys() : undefined;
    return createUdpBackend({ netlink, config: cfg, underlay, sysctl: procSysctl, log, stateDir: udp.stateDir, ...(keys ? { keys } : {}) });
  }
  return createVxlanBackend({ netlink, config: cfg, underlay, sysctl: procSysctl, log });
}

export class DataplaneComponent implements Component {
  readonly name = 'data plane';
  private readonly stopping = new AbortController();
  private netlink: Netlink | undefined;
  private backend: Backend | undefined;
  private unsubscribe: (() => void) | undefined;
  private resyncLoop: Promise<void> | undefined;
  private readonly gate;
  private grace = EMPTY_GRACE;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: DataplaneOptions) {
    this.gate = o.state.gate('data plane');
  }

  /**
   * The lease-data source: creates the backend for the config (before the lease is acquired,
   * since the lease publishes the backend's data) and records the overlay MTU.
   */
  readonly leaseData = async (cfg: NetworkConfig): Promise<Record<string, unknown>> => {
    const { state } = this.o;
    const mtu = overlayMtu(cfg.backend.type, state.underlay.mtu, cfg.backend.encrypt === true);
    this.netlink = await openNetlink();
    this.backend = await createBackend(cfg, this.netlink, state.underlay, this.o.logFor(cfg.backend.type), this.o);
    const backend = this.backend;
    if (backend.stats) state.addStatus('dataplane', () => backend.stats?.());
    const data = await this.backend.leaseData();
    await this.masquerade(cfg, true);
    state.update('mtu', { mtu });
    this.o.log.info({ backend: cfg.backend.type, mtu }, 'data plane backend ready');
    return data;
  };

  /**
   * Makes the masquerade table match --ip-masq (loaded when missing or changed, removed when
   * disabled); a failure on the first pass with --ip-masq is fatal, later ones are logged.
   */
  private async masquerade(cfg: NetworkConfig, first: boolean): Promise<void> {
    try {
      const did = await reconcileMasquerade({ enabled: this.o.ipMasq, network: cfg.network });
      if (did !== 'unchanged' && !first) this.o.log.warn({ table: MASQ_TABLE, did }, 'masquerade table differed from --ip-masq (changed by hand?); repaired');
    } catch (e) {
      if (this.o.ipMasq && first) throw e;
      if (this.o.ipMasq) this.o.log.error({ err: (e as Error).message }, 'cannot reconcile the masquerade table; retrying at the next resync');
      // Disabled and nft missing: nothing to remove.
      else this.o.log.debug({ err: (e as Error).message }, 'no masquerade table to remove');
    }
  }

  async start(): Promise<void> {
    this.unsubscribe = this.o.state.subscribe((change) => {
      if (change === 'lease' || change === 'leases') void this.reconcile(change === 'lease' ? 'lease changed' : 'lease set changed');
    });
    this.resyncLoop = (async () => {
      while (!this.stopping.signal.aborted) {
        await systemClock.sleep(this.o.resyncMs, this.stopping.signal);
        await this.reconcile('resync');
        const cfg = this.o.state.get().config;
        if (cfg !== undefined && !this.stopping.signal.aborted) await this.masquerade(cfg, false);
      }
    })();
  }

  /** One reconcile pass over the current picture; passes are serialized by the backend. */
  private async reconcile(why: string): Promise<void> {
    const { lease, leases, leasesKnown } = this.o.state.get();
    const backend = this.backend;
    if (lease === undefined || !leasesKnown || backend === undefined || this.stopping.signal.aborted) return;
    const step = applyGrace(this.grace, leases, systemClock.now(), this.o.graceMs);
    this.grace = step.state;
    clearTimeout(this.graceTimer);
    if (step.wakeAt !== undefined) {
      this.graceTimer = setTimeout(() => void this.reconcile('lease grace period over'), Math.max(0, step.wakeAt - systemClock.now()) + 1);
      this.graceTimer.unref();
    }
    const remotes = step.leases.filter((l) => !cidrEquals(l.subnet, lease.subnet));
    try {
      const report = await backend.reconcile(lease, remotes);
      if (report === undefined || report.failed.length === 0) {
        if (!this.gate.isOpen) this.o.log.info({ why, remotes: remotes.length }, 'data plane programmed');
        this.gate.open();
      }
    } catch (e) {
      this.o.log.error({ err: (e as Error).message, why }, 'data plane reconcile failed; retrying at the next resync');
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.graceTimer);
    this.unsubscribe?.();
    await this.resyncLoop;
    await this.backend?.close();
    this.netlink?.close();
  }
}
