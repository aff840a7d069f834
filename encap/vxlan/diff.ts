// The vxlan diff: desired state (plan.ts) vs what the kernel holds (as read
// by reconcile.ts, only objects weft owns) -> the ordered kernel operations
// that make them equal. Pure, so ordering and no-op behaviour are unit-tested.
//
// Rules, each there so that traffic in flight never drops:
// - An object that already matches produces no operation, so a restarted
//   agent (or a periodic resync) changes nothing on a correct host.
// - Anything that differs is *replaced* in place (NLM_F_REPLACE), never
//   deleted and re-added; only VTEP attributes the kernel cannot change on a
//   live device (VNI, local IP, port, learning, underlay dev) recreate it.
// - Links come first (everything else hangs off the VTEP); then adds in the
//   order neighbour -> FDB -> route, so a route only ever points at a next hop
//   that already resolves; then removals in the reverse order, so a route never
//   points at a next hop that is already gone. Adds go before removals: keys
//   are unique per kind (neighbour IP, FDB MAC, route prefix), so a desired
//   object is never removed, and a remote whose MAC changed gets its new FDB
//   entry before the old one goes.

import type { VxlanInfo } from '../netlink/index.js';
import type { BridgePlan, VtepPlan, VxlanPlan } from './plan.js';

export interface ActualLink {
  readonly index: number;
  readonly kind?: string;
  readonly mtu: number;
  readonly mac?: string;
  readonly up: boolean;
  readonly vxlan?: VxlanInfo;
  /** IPv4 addresses as `a.b.c.d/len`. */
  readonly addresses: readonly string[];
}

export interface ActualNeigh {
  readonly ip: string;
  readonly mac?: string;
  readonly permanent: boolean;
}

export interface ActualFdb {
  readonly mac: string;
  readonly dst?: string;
  readonly permanent: boolean;
}

export interface ActualRoute {
  readonly dst: string;
  readonly gateway?: string;
  readonly dev?: number;
  readonly onlink: boolean;
  readonly metric?: number;
}

/** What the kernel holds of weft's: the two links, and the entries on the VTEP / weft's routes. */
export interface ActualState {
  readonly bridge?: ActualLink;
  readonly vtep?: ActualLink;
  /** Neighbour entries on the VTEP. */
  readonly neighbours: readonly ActualNeigh[];
  /** FDB entries in the VTEP's own table. */
  readonly fdb: readonly ActualFdb[];
  /** Routes weft owns (proto 87, main table). */
  readonly routes: readonly ActualRoute[];
}

export type LinkRole = 'bridge' | 'vtep';

export type Op =
  | { readonly kind: 'delete-link'; readonly link: LinkRole; readonly reason: string }
  | { readonly kind: 'create-bridge'; readonly spec: BridgePlan }
  | { readonly kind: 'create-vtep'; readonly spec: VtepPlan }
  | { readonly kind: 'set-mtu'; readonly link: LinkRole; readonly mtu: number }
  | { readonly kind: 'set-mac'; readonly link: LinkRole; readonly mac: string }
  | { readonly kind: 'add-address'; readonly link: LinkRole; readonly cidr: string }
  | { readonly kind: 'delete-address'; readonly link: LinkRole; readonly cidr: string }
  | { readonly kind: 'set-up'; readonly link: LinkRole }
  | { readonly kind: 'replace-neigh'; readonly ip: string; readonly mac: string }
  | { readonly kind: 'replace-fdb'; readonly mac: string; readonly dst: string }
  | { readonly kind: 'replace-route'; readonly dst: string; readonly gateway: string }
  | { readonly kind: 'delete-route'; readonly dst: string; readonly gateway?: string; readonly dev?: number; readonly metric?: number }
  | { readonly kind: 'delete-fdb'; readonly mac: string; readonly dst?: string }
  | { readonly kind: 'delete-neigh'; readonly ip: string };

/** Ops that touch links run one by one; each other kind is a stage whose ops are independent. */
export function isLinkOp(op: Op): boolean {
  return !/-(neigh|fdb|route)$/.test(op.kind);
}

/** `ip`-like text for logs and error reports. */
export function describeOp(op: Op, names: Readonly<Record<LinkRole, string>>): string {
  switch (op.kind) {
    case 'delete-link':
      return `delete link ${names[op.link]} (${op.reason})`;
    case 'create-bridge':
      return `create bridge ${op.spec.name} mtu ${op.spec.mtu}`;
    case 'create-vtep': {
      const s = op.spec;
      return `create vxlan ${s.name} id ${s.vni} local ${s.local} dstport ${s.port} dev ${s.dev} mtu ${s.mtu} address ${s.mac} nolearning`;
    }
    case 'set-mtu':
      return `set link ${names[op.link]} mtu ${op.mtu}`;
    case 'set-mac':
      return `set link ${names[op.link]} address ${op.mac}`;
    case 'add-address':
      return `add address ${op.cidr} dev ${names[op.link]}`;
    case 'delete-address':
      return `delete address ${op.cidr} dev ${names[op.link]}`;
    case 'set-up':
      return `set link ${names[op.link]} up`;
    case 'replace-neigh':
      return `replace neigh ${op.ip} lladdr ${op.mac} dev ${names.vtep}`;
    case 'replace-fdb':
      return `replace fdb ${op.mac} dst ${op.dst} dev ${names.vtep}`;
    case 'replace-route':
      return `replace route ${op.dst} via ${op.gateway} dev ${names.vtep} onlink`;
    case 'delete-route':
      return `delete route ${op.dst}${op.gateway ? ` via ${op.gateway}` : ''}`;
    case 'delete-fdb':
      return `delete fdb ${op.mac}${op.dst ? ` dst ${op.dst}` : ''} dev ${names.vtep}`;
    case 'delete-neigh':
      return `delete neigh ${op.ip} dev ${names.vtep}`;
  }
}

/** Why the VTEP must be recreated (an attribute a live vxlan device cannot change), or undefined. */
export function vtepRecreateReason(want: VtepPlan, have: ActualLink): string | undefined {
  if (have.kind !== 'vxlan' || !have.vxlan) return `is a ${have.kind ?? 'plain'} device, not vxlan`;
  const v = have.vxlan;
  if (v.vni !== want.vni) return `VNI ${v.vni} != ${want.vni}`;
  if (v.local !== want.local) return `local ${v.local ?? 'unset'} != ${want.local}`;
  // The kernel omits no attribute here, but a missing port means its default.
  if ((v.port ?? 8472) !== want.port) return `dstport ${v.port} != ${want.port}`;
  if (v.learning !== want.learning) return `learning ${String(v.learning)} != ${String(want.learning)}`;
  if (want.devIndex !== undefined && v.dev !== want.devIndex) return `dev if${v.dev ?? 0} != if${want.devIndex}`;
  return undefined;
}

/** Entries by key, so that 1000 remotes cost 1000 lookups and not a million comparisons. */
function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}

/** Adds the wanted address first, then drops the others: the link keeps an address throughout. */
function addressOps(link: LinkRole, want: string, have: readonly string[]): Op[] {
  const ops: Op[] = [];
  if (!have.includes(want)) ops.push({ kind: 'add-address', link, cidr: want });
  for (const cidr of have) if (cidr !== want) ops.push({ kind: 'delete-address', link, cidr });
  return ops;
}

function bridgeOps(want: BridgePlan, have: ActualLink | undefined): Op[] {
  if (have && have.kind !== 'bridge') {
    return [{ kind: 'delete-link', link: 'bridge', reason: `is a ${have.kind ?? 'plain'} device, not a bridge` }, ...bridgeOps(want, undefined)];
  }
  if (!have) {
    return [{ kind: 'create-bridge', spec: want }, { kind: 'add-address', link: 'bridge', cidr: want.address }, { kind: 'set-up', link: 'bridge' }];
  }
  // The bridge's MAC is left alone on purpose (see deriveBridgeMac).
  const ops: Op[] = [];
  if (have.mtu !== want.mtu) ops.push({ kind: 'set-mtu', link: 'bridge', mtu: want.mtu });
  ops.push(...addressOps('bridge', want.address, have.addresses));
  if (!have.up) ops.push({ kind: 'set-up', link: 'bridge' });
  return ops;
}

/** The VTEP's ops, and whether it is (re)created (then nothing on it survives). */
function vtepOps(want: VtepPlan, have: ActualLink | undefined): { ops: Op[]; fresh: boolean } {
  const recreate = have && vtepRecreateReason(want, have);
  if (!have || recreate) {
    const ops: Op[] = recreate ? [{ kind: 'delete-link', link: 'vtep', reason: recreate }] : [];
    ops.push({ kind: 'create-vtep', spec: want }, { kind: 'add-address', link: 'vtep', cidr: want.address }, { kind: 'set-up', link: 'vtep' });
    return { ops, fresh: true };
  }
  const ops: Op[] = [];
  if (have.mtu !== want.mtu) ops.push({ kind: 'set-mtu', link: 'vtep', mtu: want.mtu });
  if (have.mac !== want.mac) ops.push({ kind: 'set-mac', link: 'vtep', mac: want.mac });
  ops.push(...addressOps('vtep', want.address, have.addresses));
  if (!have.up) ops.push({ kind: 'set-up', link: 'vtep' });
  return { ops, fresh: false };
}

function neighOps(plan: VxlanPlan, have: readonly ActualNeigh[]): { adds: Op[]; removals: Op[] } {
  const byIp = new Map(have.map((n) => [n.ip, n]));
  const wanted = new Set(plan.neighbours.map((n) => n.ip));
  const adds: Op[] = [];
  for (const n of plan.neighbours) {
    const h = byIp.get(n.ip);
    if (!h || !h.permanent || h.mac !== n.mac) adds.push({ kind: 'replace-neigh', ip: n.ip, mac: n.mac });
  }
  // Only permanent entries are weft's: the kernel's own (incomplete, failed)
  // ones age out by themselves and deleting them would be a write per pass.
  const removals: Op[] = have.filter((n) => n.permanent && !wanted.has(n.ip)).map((n) => ({ kind: 'delete-neigh', ip: n.ip }));
  return { adds, removals };
}

function fdbOps(plan: VxlanPlan, have: readonly ActualFdb[]): { adds: Op[]; removals: Op[] } {
  const want = new Map(plan.fdb.map((f) => [f.mac, f.dst]));
  const adds: Op[] = [];
  const removals: Op[] = [];
  const byMac = groupBy(have, (h) => h.mac);
  for (const f of plan.fdb) {
    const entries = byMac.get(f.mac) ?? [];
    if (!entries.some((h) => h.dst === f.dst && h.permanent)) adds.push({ kind: 'replace-fdb', mac: f.mac, dst: f.dst });
    // One MAC may carry several destinations (`bridge fdb append`): keep only ours.
    for (const h of entries) {
      if (h.dst !== undefined && h.dst !== f.dst) removals.push({ kind: 'delete-fdb', mac: f.mac, dst: h.dst });
    }
  }
  for (const h of have) {
    if (h.permanent && !want.has(h.mac)) removals.push({ kind: 'delete-fdb', mac: h.mac, ...(h.dst !== undefined ? { dst: h.dst } : {}) });
  }
  return { adds, removals };
}

function routeOps(plan: VxlanPlan, have: readonly ActualRoute[], vtepIndex: number | undefined): { adds: Op[]; removals: Op[] } {
  const want = new Map(plan.routes.map((r) => [r.dst, r.gateway]));
  const adds: Op[] = [];
  const removals: Op[] = [];
  const remove = (r: ActualRoute): void => {
    removals.push({
      kind: 'delete-route',
      dst: r.dst,
      ...(r.gateway !== undefined ? { gateway: r.gateway } : {}),
      ...(r.dev !== undefined ? { dev: r.dev } : {}),
      ...(r.metric !== undefined ? { metric: r.metric } : {}),
    });
  };
  const byDst = groupBy(have, (h) => h.dst);
  for (const r of plan.routes) {
    const same = byDst.get(r.dst) ?? [];
    const ok = vtepIndex !== undefined && same.some((h) => h.gateway === r.gateway && h.dev === vtepIndex && h.onlink && !h.metric);
    // A replace takes the place of the metric-0 route to that prefix; any other metric is a second route.
    if (!ok) adds.push({ kind: 'replace-route', dst: r.dst, gateway: r.gateway });
    for (const h of same) if (h.metric) remove(h);
  }
  for (const h of have) if (!want.has(h.dst)) remove(h);
  return { adds, removals };
}

export function diffVxlan(plan: VxlanPlan, actual: ActualState): Op[] {
  const vtep = vtepOps(plan.vtep, actual.vtep);
  // A (re)created VTEP starts empty, and routes through the old one vanish with it.
  const onVtep = vtep.fresh
    ? { neighbours: [], fdb: [], routes: actual.routes.filter((r) => actual.vtep === undefined || r.dev !== actual.vtep.index) }
    : actual;
  const vtepIndex = vtep.fresh ? undefined : actual.vtep?.index;
  const n = neighOps(plan, onVtep.neighbours);
  const f = fdbOps(plan, onVtep.fdb);
  const r = routeOps(plan, onVtep.routes, vtepIndex);
  return [
    ...bridgeOps(plan.bridge, actual.bridge),
    ...vtep.ops,
    ...n.adds,
    ...f.adds,
    ...r.adds,
    ...r.removals,
    ...f.removals,
    ...n.removals,
  ];
}
