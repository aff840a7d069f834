// Gossip membership as an agent component: the SWIM state machine
// (agent/gossip/swim.ts) on the real sockets (agent/gossip/net-transport.ts),
// bound to the public IP on --gossip-port. It publishes its port in the
// lease's BackendData (`GossipPort`) and joins the members it finds in the
// lease set; after that, members learn each other by gossip, so membership
// (and what the delegate carries, the DNS records) keeps working while etcd
// is down. Every message is sealed with a key derived for gossip from the
// key source; a key file rotation takes effect without a restart.

import type { Logger } from 'pino';
import { deriveKey, describeKeyring, type Keyring } from '../../ipam/keys.js';
import type { Lease } from '../../ipam/types.js';
import type { Routes } from '../api/server.js';
import type { LeaseDataSource } from './leases.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import type { KeySource } from '../keys/key-source.js';
import type { Endpoint } from '../gossip/messages.js';
import { NetTransport } from '../gossip/net-transport.js';
import { RateLimitedLog } from '../gossip/rate-log.js';
import { SEAL_OVERHEAD, type SealKey } from '../gossip/seal.js';
import { memberlistDefaults, SwimNode, type SwimConfig, type Timers } from '../gossip/swim.js';
import type { Gossip, GossipDelegate, MemberId, MemberInfo } from '../gossip/types.js';

export const DEFAULT_GOSSIP_PORT = 7946;

export interface GossipOptions {
  readonly state: NodeState;
  readonly port: number;
  /** Resolves once keys are known (a key file at once; the etcd cluster key when etcd answers). */
  readonly openKeys: (signal: AbortSignal) => Promise<KeySource>;
  readonly log: Logger;
  readonly fail: (e: unknown) => void;
  readonly config?: Partial<SwimConfig>;
}

const realTimers: Timers = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Gossip endpoints of the other hosts, from their leases' `BackendData.GossipPort`. */
export function seedsFromLeases(leases: readonly Lease[], self: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const l of leases) {
    const port = l.attrs.backendData['GossipPort'];
    if (l.attrs.publicIP === self || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    out.push({ addr: l.attrs.publicIP, port });
  }
  return out;
}

export function gossipKeys(ring: Keyring): SealKey[] {
  return ring.keys.map((k) => ({ id: k.id, key: deriveKey(k.secret, 'gossip') }));
}

export class GossipComponent implements Component, Gossip {
  readonly name = 'gossip';
  readonly localId: MemberId;
  private delegate: GossipDelegate | undefined;
  private keys: SealKey[] = [];
  private keyIds: string[] = [];
  private readonly transport: NetTransport;
  private readonly node: SwimNode;
  private readonly stopping = new AbortController();
  private keySource: KeySource | undefined;
  private unsubscribe: (() => void)[] = [];
  private started = false;
  private readonly rl: RateLimitedLog;

  /** What the leases component publishes for us. */
  readonly leaseData: LeaseDataSource = async () => ({ GossipPort: this.o.port });

  constructor(private readonly o: GossipOptions) {
    const { publicIP, mtu } = o.state.underlay;
    this.localId = publicIP;
    this.rl = new RateLimitedLog(o.log);
    this.transport = new NetTransport({ bindAddr: publicIP, port: o.port, keys: () => this.keys, log: o.log });
    const ipUdp = publicIP.includes(':') ? 48 : 28;
    const config: SwimConfig = { ...memberlistDefaults, maxPacketBytes: Math.min(1400, mtu - ipUdp - SEAL_OVERHEAD), ...o.config };
    const forward: GossipDelegate = {
      localState: () => this.delegate?.localState() ?? new Uint8Array(0),
      mergeRemoteState: (s, from) => this.delegate?.mergeRemoteState(s, from),
      notifyMessage: (m, from) => this.delegate?.notifyMessage(m, from),
      notifyMember: (m) => {
        o.log.info({ member: m.id, state: m.state, incarnation: m.incarnation }, `gossip member ${m.state}`);
        this.delegate?.notifyMember(m);
      },
    };
    this.node = new SwimNode({
      id: publicIP, addr: publicIP, port: o.port, config, transport: this.transport, timers: realTimers, random: Math.random,
      delegate: forward,
      seeds: () => seedsFromLeases(o.state.get().leases, publicIP),
      onError: (what, e) => this.rl.warn(what, { err: (e as Error).message }, `gossip: ${what} failed`),
    });
    this.transport.onPacket = (p) => this.node.handlePacket(p);
    this.transport.onPushPull = (s) => this.node.handlePushPull(s);
    o.state.addStatus('gossip', () => this.status());
  }

  /** The data gossip carries (the DNS record store); set before start. */
  setDelegate(d: GossipDelegate): void {
    this.delegate = d;
  }

  readonly routes: Routes = {
    'GET /v1/peers': async () => ({ localId: this.localId, members: this.members() }),
  };

  broadcast(msg: Uint8Array): void {
    this.node.broadcast(msg);
  }

  members(): MemberInfo[] {
    return this.node.members();
  }

  async start(): Promise<void> {
    void this.run().catch((e: unknown) => {
      if (!this.stopping.signal.aborted) this.o.fail(e);
    });
  }

  private async run(): Promise<void> {
    const ks = await this.o.openKeys(this.stopping.signal);
    if (this.stopping.signal.aborted) return;
    this.keySource = ks;
    this.setKeys(ks.current());
    // Bound only once keys are known (nothing could be opened before); a taken port ends the agent
    // with the flag to change.
    await this.transport.listen();
    if (this.stopping.signal.aborted) return this.transport.close();
    this.o.log.info({ addr: this.localId, port: this.o.port, keys: this.keyIds }, 'gossip listening');
    this.unsubscribe.push(ks.subscribe((ring) => this.setKeys(ring)));
    this.node.start();
    this.started = true;
    const joinNew = (): void => {
      const known = new Set(this.node.members().map((m) => m.id));
      const fresh = seedsFromLeases(this.o.state.get().leases, this.localId).filter((s) => !known.has(s.addr));
      if (fresh.length > 0) void this.node.join(fresh).then((n) => this.o.log.info({ asked: fresh.length, answered: n }, 'gossip joined members from the leases'));
    };
    this.unsubscribe.push(this.o.state.subscribe((change) => { if (change === 'leases') joinNew(); }));
    joinNew();
  }

  private setKeys(ring: Keyring): void {
    this.keys = gossipKeys(ring);
    this.keyIds = describeKeyring(ring);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    for (const u of this.unsubscribe.splice(0)) u();
    this.node.stop();
    this.transport.close();
    this.keySource?.close();
  }

  status(): Record<string, unknown> {
    const s = this.node.stats();
    const c = this.transport.counters;
    return {
      running: this.started,
      addr: this.localId,
      port: this.o.port,
      keys: this.keyIds,
      members: s.members,
      alive: s.alive,
      suspect: s.suspect,
      dead: s.dead,
      incarnation: s.incarnation,
      packetsIn: c.packetsIn,
      packetsOut: c.packetsOut,
      dropped: c.dropped,
      pushPulls: s.pushPulls,
      pushPullFailures: s.pushPullFailures,
    };
  }
}
