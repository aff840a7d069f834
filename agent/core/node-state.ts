// What the agent knows about its node, in one place: the network config, the
// overlay MTU, the lease it holds, the lease set it watches, and what
// readiness still waits for. Components write their facts here and subscribe
// to the facts of others, instead of holding mutable variables in the
// daemon's wiring; status and readiness are computed from it, so /readyz,
// `weft status` and the CNI STATUS call can never disagree.

import { formatCidr } from '../../ipam/cidr.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import type { AgentStatus } from '../api/types.js';

export interface NodeFacts {
  readonly config?: NetworkConfig;
  readonly mtu?: number;
  /** This host's lease. */
  readonly lease?: Lease;
  /** Every lease in the network, this host's included, as last listed or watched. */
  readonly leases: readonly Lease[];
  /** Whether a complete lease list has arrived (the data plane never acts before). */
  readonly leasesKnown: boolean;
  /** etcd revision of `leases`. */
  readonly revision: number;
}

export type Change = 'config' | 'mtu' | 'lease' | 'leases' | 'ready';
export type ChangeListener = (change: Change, facts: NodeFacts) => void;

/** A readiness condition a component owns: not ready until opened. */
export interface Gate {
  open(): void;
  close(): void;
  readonly isOpen: boolean;
}

export interface Underlay {
  readonly iface: string;
  readonly publicIP: string;
  readonly mtu: number;
}

export class NodeState {
  private facts: NodeFacts = { leases: [], leasesKnown: false, revision: 0 };
  private readonly listeners = new Set<ChangeListener>();
  /** Insertion-ordered, so the operator reads the missing steps in the order they happen. */
  private readonly gates = new Map<string, boolean>();
  private readonly sections = new Map<string, () => unknown>();

  constructor(readonly underlay: Underlay) {}

  get(): NodeFacts {
    return this.facts;
  }

  update(change: Change, patch: Partial<NodeFacts>): void {
    this.facts = { ...this.facts, ...patch };
    this.notify(change);
  }

  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private notify(change: Change): void {
    for (const fn of this.listeners) fn(change, this.facts);
  }

  /** Registers a readiness condition, closed until the owner opens it. */
  gate(name: string): Gate {
    this.gates.set(name, false);
    const set = (open: boolean): void => {
      if (this.gates.get(name) === open) return;
      this.gates.set(name, open);
      this.notify('ready');
    };
    const gates = this.gates;
    return {
      open: () => set(true),
      close: () => set(false),
      get isOpen() {
        return gates.get(name) === true;
      },
    };
  }

  /** Empty when ready; otherwise what is still missing, in the order the steps happen. */
  notReady(): string[] {
    return [...this.gates].filter(([, open]) => !open).map(([name]) => name);
  }

  /** A section of `GET /v1/status` owned by a component (gossip, DNS, …). */
  addStatus(name: string, fn: () => unknown): void {
    this.sections.set(name, fn);
  }

  /** This host's subnet and the overlay MTU, once both are known (the attachment service needs both). */
  hostNetwork(): { subnet: Lease['subnet']; mtu: number } | undefined {
    const { lease, mtu } = this.facts;
    return lease !== undefined && mtu !== undefined ? { subnet: lease.subnet, mtu } : undefined;
  }

  status(): AgentStatus {
    const { config, mtu, lease, leases, revision } = this.facts;
    const waitingFor = this.notReady();
    const extra: Record<string, unknown> = {};
    for (const [name, fn] of this.sections) extra[name] = fn();
    return {
      ready: waitingFor.length === 0,
      waitingFor,
      publicIP: this.underlay.publicIP,
      iface: this.underlay.iface,
      ...(config ? { network: formatCidr(config.network), backend: config.backend.type } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
      ...(lease ? { subnet: formatCidr(lease.subnet), leaseId: lease.leaseId } : {}),
      revision,
      leases: leases.map((l) => ({ subnet: formatCidr(l.subnet), publicIP: l.attrs.publicIP, backendType: l.attrs.backendType })),
      ...extra,
    };
  }
}
