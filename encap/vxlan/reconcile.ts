// The acting half of the vxlan reconciler: read what the kernel holds of
// weft's (readActual) and carry out the diff's operations (applyOps). The
// deciding half is pure (plan.ts, diff.ts); this file is the only one in
// encap/vxlan that talks to the kernel, and only through encap/netlink.
//
// Ops touching links run one after another (later ops need their ifindex).
// The neighbour, FDB and route ops after them go to the kernel as one bulk
// (Netlink.bulk: a few sendmsg, no ACK per object, one promise), in the diff's
// order, which the kernel keeps, so the neighbour -> FDB -> route order per
// remote holds. One failed op is reported and the rest go on: a single bad
// remote must not stop every other host from being reachable.

import { cidrContains, cidrOf, parseAddrPrefix } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import type { Cidr } from '../../ipam/types.js';
import { AF } from '../netlink/constants.js';
import { type BulkOp, type Netlink, RTPROT_WEFT, isNotFound } from '../netlink/index.js';
import type { AddressInfo, LinkInfo } from '../netlink/index.js';
import { type ActualLink, type ActualState, type LinkRole, type Op, describeOp, isLinkOp } from './diff.js';

export interface LinkNames {
  readonly bridge: string;
  readonly vtep: string;
  readonly underlay: string;
}

export interface ReadResult {
  readonly actual: ActualState;
  /** ifindex of the underlay interface, when it exists. */
  readonly underlayIndex?: number;
}

/** Whether a route's destination ("10.42.7.0/24") lies inside the overlay network. */
export function inOverlay(dst: string, network: Cidr): boolean {
  const p = parseAddrPrefix(dst);
  return cidrContains(network, cidrOf(p.addr, p.len));
}

function ownsRoute(r: { dst: string; dev?: number }, vtepIndex: number | undefined, network: Cidr): boolean {
  if (r.dev !== undefined && r.dev === vtepIndex) return true;
  // Also weft routes into the overlay through another device (an earlier VTEP, the udp backend's TUN).
  return inOverlay(r.dst, network);
}

/** A link as the diffs see it (vxlan's and udp's alike), with its IPv4 addresses from `addresses`. */
export function actualLink(l: LinkInfo, addresses: readonly AddressInfo[]): ActualLink {
  return {
    index: l.index,
    ...(l.kind !== undefined ? { kind: l.kind } : {}),
    mtu: l.mtu,
    ...(l.mac !== undefined ? { mac: l.mac } : {}),
    up: l.up,
    ...(l.vxlan ? { vxlan: l.vxlan } : {}),
    addresses: addresses.filter((a) => a.index === l.index && a.family === AF.INET).map((a) => `${a.address}/${a.prefixLen}`),
  };
}

/** The kernel's view of weft's objects, in the diff's terms. Seven requests, issued in two rounds. */
export async function readActual(nl: Netlink, names: LinkNames, network: Cidr): Promise<ReadResult> {
  const [bridge, vtep, underlay] = await Promise.all([nl.getLink(names.bridge), nl.getLink(names.vtep), nl.getLink(names.underlay)]);
  const [addresses, neighbours, fdb, routes] = await Promise.all([
    nl.listAddresses(),
    vtep ? nl.listNeighbours(vtep.index) : [],
    vtep ? nl.listFdb(vtep.index) : [],
    nl.listRoutes({ proto: RTPROT_WEFT }),
  ]);
  const link = (l: LinkInfo | undefined): ActualLink | undefined => l && actualLink(l, addresses);
  return {
    actual: {
      ...(bridge ? { bridge: link(bridge) } : {}),
      ...(vtep ? { vtep: link(vtep) } : {}),
      neighbours: neighbours.map((n) => ({ ip: n.ip, ...(n.mac ? { mac: n.mac } : {}), permanent: n.permanent })),
      // Entries a bridge master keeps for the device are not the VTEP's own table.
      fdb: fdb.filter((f) => f.self && f.master === undefined).map((f) => ({ mac: f.mac, ...(f.dst ? { dst: f.dst } : {}), permanent: f.permanent })),
      routes: routes.filter((r) => ownsRoute(r, vtep?.index, network)),
    },
    ...(underlay ? { underlayIndex: underlay.index } : {}),
  };
}

export interface OpFailure {
  readonly op: string;
  readonly error: string;
  readonly errno?: string;
}

export interface ApplyResult {
  /** Ops the kernel accepted (deletes of objects already gone count as done). */
  readonly applied: number;
  readonly failed: readonly OpFailure[];
  /** Ops not tried because creating or deleting a link before them failed. */
  readonly notTried: number;
}

/** Carries out one op; link ops update `index` with what they created or removed. */
async function applyOne(nl: Netlink, op: Op, index: Map<LinkRole, number>): Promise<void> {
  const of = (role: LinkRole): number => {
    const i = index.get(role);
    if (i === undefined) throw new WeftError('INTERNAL', `vxlan reconcile: ${role} link is missing for this op`, { role });
    return i;
  };
  switch (op.kind) {
    case 'delete-link':
      await nl.deleteLink(of(op.link));
      index.delete(op.link);
      return;
    case 'create-bridge': {
      const l = await nl.createBridge({ name: op.spec.name, mtu: op.spec.mtu, mac: op.spec.mac });
      index.set('bridge', l.index);
      return;
    }
    case 'create-vtep': {
      const s = op.spec;
      const l = await nl.createVxlan({ name: s.name, vni: s.vni, local: s.local, port: s.port, learning: s.learning, dev: s.devIndex ?? s.dev, mtu: s.mtu, mac: s.mac });
      index.set('vtep', l.index);
      return;
    }
    case 'set-mtu':
      return nl.setMtu(of(op.link), op.mtu);
    case 'set-mac':
      return nl.setMac(of(op.link), op.mac);
    case 'add-address':
      return nl.addAddress(of(op.link), op.cidr);
    case 'delete-address':
      return nl.deleteAddress(of(op.link), op.cidr);
    case 'set-up':
      return nl.setUp(of(op.link));
    default:
      throw new WeftError('INTERNAL', `vxlan reconcile: ${op.kind} is not a link op`);
  }
}

/** The netlink write for a neighbour, FDB or route op. */
function bulkOp(op: Op, vtep: () => number): BulkOp {
  switch (op.kind) {
    case 'replace-neigh':
      return { kind: 'replace-neigh', dev: vtep(), ip: op.ip, mac: op.mac };
    case 'replace-fdb':
      return { kind: 'replace-fdb', dev: vtep(), mac: op.mac, dst: op.dst };
    case 'replace-route':
      return { kind: 'replace-route', route: { dst: op.dst, gateway: op.gateway, dev: vtep(), onlink: true, proto: RTPROT_WEFT } };
    case 'delete-route':
      return {
        kind: 'delete-route',
        route: {
          dst: op.dst,
          proto: RTPROT_WEFT,
          ...(op.gateway !== undefined ? { gateway: op.gateway } : {}),
          ...(op.dev !== undefined ? { dev: op.dev } : {}),
          ...(op.metric !== undefined ? { metric: op.metric } : {}),
        },
      };
    case 'delete-fdb':
      return { kind: 'delete-fdb', dev: vtep(), mac: op.mac, ...(op.dst !== undefined ? { dst: op.dst } : {}) };
    case 'delete-neigh':
      return { kind: 'delete-neigh', dev: vtep(), ip: op.ip };
    default:
      throw new WeftError('INTERNAL', `vxlan reconcile: ${op.kind} is a link op`);
  }
}

const isDelete = (op: Op): boolean => op.kind.startsWith('delete-');

/**
 * Applies `ops` in the diff's order. `index` holds the current ifindex of each
 * link that exists (from readActual); it is updated as links are made.
 */
export async function applyOps(nl: Netlink, ops: readonly Op[], index: Map<LinkRole, number>, names: Readonly<Record<LinkRole, string>>): Promise<ApplyResult> {
  let applied = 0;
  const failed: OpFailure[] = [];
  /** Counts one op's outcome; false when it failed. */
  const settle = (op: Op, e: unknown): boolean => {
    // Someone (or the VTEP's removal) already took it away: the goal is met.
    if (e === undefined || (isDelete(op) && isNotFound(e))) {
      applied++;
      return true;
    }
    const err = e as WeftError;
    const errno = typeof err.details?.errno === 'string' ? err.details.errno : undefined;
    failed.push({ op: describeOp(op, names), error: err.message, ...(errno ? { errno } : {}) });
    return false;
  };
  const vtep = (): number => {
    const i = index.get('vtep');
    if (i === undefined) throw new WeftError('INTERNAL', 'vxlan reconcile: vtep link is missing for this op', { role: 'vtep' });
    return i;
  };
  let i = 0;
  while (i < ops.length) {
    const op = ops[i]!;
    if (isLinkOp(op)) {
      i++;
      // Without the link nothing after it can work; a failed MTU or address change is only reported.
      const fatal = op.kind === 'delete-link' || op.kind.startsWith('create-');
      const ok = settle(op, await applyOne(nl, op, index).then(() => undefined, (e: unknown) => e ?? new Error('unknown failure')));
      if (!ok && fatal) return { applied, failed, notTried: ops.length - i };
      continue;
    }
    let j = i;
    while (j < ops.length && !isLinkOp(ops[j]!)) j++;
    const run = ops.slice(i, j);
    let outcomes: unknown[];
    try {
      outcomes = await nl.bulk(run.map((o) => bulkOp(o, vtep)));
    } catch (e) {
      outcomes = run.map(() => e);
    }
    run.forEach((o, k) => settle(o, outcomes[k]));
    i = j;
  }
  return { applied, failed, notTried: 0 };
}
