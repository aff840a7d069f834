// The udp backend's kernel side: what weft0, weft-tun and weft's routes look
// like (readUdpActual), what must change (diffUdp, pure) and doing it
// (applyUdpOps, through encap/netlink only). As in the vxlan reconciler,
// matching objects produce no operation (a restart writes nothing), things
// that differ are replaced in place, and removals come after adds. Removals
// are weft's own routes (proto 87) into the overlay network other than the
// TUN route, e.g. the per-host routes a vxlan agent left on this host.

import { WeftError } from '../../ipam/errors.js';
import type { Cidr } from '../../ipam/types.js';
import { type Netlink, RTPROT_WEFT, isNotFound } from '../netlink/index.js';
import type { RouteInfo } from '../netlink/index.js';
import type { UdpPlan } from './plan.js';
import { actualLink, inOverlay } from '../vxlan/reconcile.js';

export interface UdpActualLink {
  readonly index: number;
  readonly kind?: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly addresses: readonly string[];
}

export interface UdpActual {
  readonly bridge?: UdpActualLink;
  readonly tun?: UdpActualLink;
  /** weft's routes (proto 87, main table) into the overlay network. */
  readonly routes: readonly RouteInfo[];
}

export type UdpOp =
  | { readonly kind: 'delete-bridge'; readonly reason: string }
  | { readonly kind: 'create-bridge' }
  | { readonly kind: 'set-mtu'; readonly link: 'bridge' | 'tun'; readonly mtu: number }
  | { readonly kind: 'add-address'; readonly cidr: string }
  | { readonly kind: 'delete-address'; readonly cidr: string }
  | { readonly kind: 'set-up'; readonly link: 'bridge' | 'tun' }
  | { readonly kind: 'replace-route' }
  | { readonly kind: 'delete-route'; readonly route: RouteInfo };

export function describeUdpOp(op: UdpOp, plan: UdpPlan): string {
  switch (op.kind) {
    case 'delete-bridge':
      return `delete link ${plan.bridge.name} (${op.reason})`;
    case 'create-bridge':
      return `create bridge ${plan.bridge.name} mtu ${plan.bridge.mtu}`;
    case 'set-mtu':
      return `set link ${op.link === 'tun' ? plan.tun.name : plan.bridge.name} mtu ${op.mtu}`;
    case 'add-address':
      return `add address ${op.cidr} dev ${plan.bridge.name}`;
    case 'delete-address':
      return `delete address ${op.cidr} dev ${plan.bridge.name}`;
    case 'set-up':
      return `set link ${op.link === 'tun' ? plan.tun.name : plan.bridge.name} up`;
    case 'replace-route':
      return `replace route ${plan.route.dst} dev ${plan.tun.name} src ${plan.route.src}`;
    case 'delete-route':
      return `delete route ${op.route.dst}${op.route.dev !== undefined ? ` dev if${op.route.dev}` : ''}`;
  }
}

/** Pure: the operations that make `actual` match `plan`. The TUN device itself is the forwarder's (it exists while it runs). */
export function diffUdp(plan: UdpPlan, actual: UdpActual): UdpOp[] {
  const ops: UdpOp[] = [];
  let bridge = actual.bridge;
  if (bridge && bridge.kind !== 'bridge') {
    ops.push({ kind: 'delete-bridge', reason: `is a ${bridge.kind ?? 'plain'} device, not a bridge` });
    bridge = undefined;
  }
  if (!bridge) {
    ops.push({ kind: 'create-bridge' }, { kind: 'add-address', cidr: plan.bridge.address }, { kind: 'set-up', link: 'bridge' });
  } else {
    if (bridge.mtu !== plan.bridge.mtu) ops.push({ kind: 'set-mtu', link: 'bridge', mtu: plan.bridge.mtu });
    if (!bridge.addresses.includes(plan.bridge.address)) ops.push({ kind: 'add-address', cidr: plan.bridge.address });
    for (const a of bridge.addresses) if (a !== plan.bridge.address) ops.push({ kind: 'delete-address', cidr: a });
    if (!bridge.up) ops.push({ kind: 'set-up', link: 'bridge' });
  }
  const tun = actual.tun;
  if (tun && tun.mtu !== plan.tun.mtu) ops.push({ kind: 'set-mtu', link: 'tun', mtu: plan.tun.mtu });
  if (!tun || !tun.up) ops.push({ kind: 'set-up', link: 'tun' });
  const ours = (r: RouteInfo): boolean => tun !== undefined && r.dst === plan.route.dst && r.dev === tun.index && r.src === plan.route.src && !r.metric;
  if (!actual.routes.some(ours)) ops.push({ kind: 'replace-route' });
  for (const r of actual.routes) if (!ours(r)) ops.push({ kind: 'delete-route', route: r });
  return ops;
}


export async function readUdpActual(nl: Netlink, plan: UdpPlan, network: Cidr): Promise<UdpActual> {
  const [bridge, tun, addresses, routes] = await Promise.all([
    nl.getLink(plan.bridge.name),
    nl.getLink(plan.tun.name),
    nl.listAddresses(),
    nl.listRoutes({ proto: RTPROT_WEFT }),
  ]);
  return {
    ...(bridge ? { bridge: actualLink(bridge, addresses) } : {}),
    ...(tun ? { tun: actualLink(tun, addresses) } : {}),
    routes: routes.filter((r) => inOverlay(r.dst, network) || (tun !== undefined && r.dev === tun.index)),
  };
}

export interface UdpApplyResult {
  readonly applied: number;
  readonly failed: readonly { readonly op: string; readonly error: string }[];
}

/** Carries the ops out in order; one failure is reported and the rest go on (a failed bridge creation stops its dependants). */
export async function applyUdpOps(nl: Netlink, plan: UdpPlan, ops: readonly UdpOp[]): Promise<UdpApplyResult> {
  let applied = 0;
  const failed: { op: string; error: string }[] = [];
  const dev = async (link: 'bridge' | 'tun'): Promise<number> => nl.index(link === 'tun' ? plan.tun.name : plan.bridge.name);
  for (const op of ops) {
    try {
      switch (op.kind) {
        case 'delete-bridge':
          await nl.deleteLink(plan.bridge.name);
          break;
        case 'create-bridge':
          await nl.createBridge({ name: plan.bridge.name, mtu: plan.bridge.mtu, mac: plan.bridge.mac });
          break;
        case 'set-mtu':
          await nl.setMtu(await dev(op.link), op.mtu);
          break;
        case 'add-address':
          await nl.addAddress(await dev('bridge'), op.cidr);
          break;
        case 'delete-address':
          await nl.deleteAddress(await dev('bridge'), op.cidr);
          break;
        case 'set-up':
          await nl.setUp(await dev(op.link));
          break;
        case 'replace-route':
          await nl.replaceRoute({ dst: plan.route.dst, dev: await dev('tun'), src: plan.route.src, proto: RTPROT_WEFT });
          break;
        case 'delete-route': {
          const r = op.route;
          await nl.deleteRoute({
            dst: r.dst,
            proto: RTPROT_WEFT,
            ...(r.gateway !== undefined ? { gateway: r.gateway } : {}),
            ...(r.dev !== undefined ? { dev: r.dev } : {}),
            ...(r.metric !== undefined ? { metric: r.metric } : {}),
          });
          break;
        }
      }
      applied++;
    } catch (e) {
      if (op.kind.startsWith('delete-') && isNotFound(e)) {
        applied++;
        continue;
      }
      failed.push({ op: describeUdpOp(op, plan), error: (e as Error).message });
      if (op.kind === 'create-bridge' || op.kind === 'delete-bridge') {
        throw new WeftError('KERNEL', `udp backend: ${describeUdpOp(op, plan)} failed: ${(e as Error).message}`, { op: op.kind });
      }
    }
  }
  return { applied, failed };
}
