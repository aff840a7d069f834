// The one place weft talks to the kernel's routing stack: links, addresses,
// routes, neighbours and VXLAN FDB entries, in our own or another network
// namespace, as plain objects in and out (types.ts). Every failure is a
// WeftError('KERNEL') naming the operation, the object and the errno, the way
// an operator would read it from `ip`. Never spawns `ip`/`bridge`.
//
// Built on our own small rtnetlink codec (codec.ts, messages.ts) over the
// native addon's socket rather than on the npm `netlink` package: that package
// cannot open its socket in another netns or from an fd, reports errors as
// strings without the kernel's extended-ACK text, tracks only one multipart
// reply at a time, and its unhandled 'error' event takes the process down
// under load; what weft needs from rtnetlink is a few dozen attributes.

import { WeftError, isWeftError } from '../../ipam/errors.js';
import { AF, NLM_F, RTM, RT_TABLE_MAIN } from './constants.js';
import { type OpContext, fromSystemError, kernelError } from './errors.js';
import * as m from './messages.js';
import { loadNative } from './native.js';
import { withNetnsFd } from './netns.js';
import { NetlinkErrno, NetlinkSocket, type Request, type SocketOptions } from './socket.js';
import type {
  AddressInfo,
  BridgeSpec,
  FdbInfo,
  FdbSpec,
  LinkInfo,
  LinkRef,
  NeighInfo,
  NeighSpec,
  NetnsRef,
  RouteFilter,
  RouteInfo,
  RouteSpec,
  VethSpec,
  VxlanSpec,
} from './types.js';

export interface OpenOptions extends SocketOptions {
  /** Work inside this network namespace (e.g. /run/netns/NAME); default: the agent's own. */
  netnsPath?: string;
}

/**
 * One write of a bulk (Netlink.bulk): neighbour, FDB and route changes on
 * devices given by ifindex, the reconciler's hot path.
 */
export type BulkOp =
  | { readonly kind: 'replace-neigh'; readonly dev: number; readonly ip: string; readonly mac: string }
  | { readonly kind: 'delete-neigh'; readonly dev: number; readonly ip: string }
  | { readonly kind: 'replace-fdb'; readonly dev: number; readonly mac: string; readonly dst: string }
  | { readonly kind: 'delete-fdb'; readonly dev: number; readonly mac: string; readonly dst?: string }
  | { readonly kind: 'replace-route'; readonly route: RouteSpec & { readonly dev: number } }
  | { readonly kind: 'delete-route'; readonly route: RouteSpec };

/** A request and how to name it if the kernel refuses it. */
interface Prepared {
  readonly op: string;
  readonly dev: LinkRef | undefined;
  readonly describe: (devName: string) => string;
  readonly req: Request;
}

const ENODEV = 19;
const CREATE_EXCL = NLM_F.CREATE | NLM_F.EXCL;
const CREATE_REPLACE = NLM_F.CREATE | NLM_F.REPLACE;

export async function openNetlink(opts: OpenOptions = {}): Promise<Netlink> {
  const addon = loadNative();
  const open = (nsFd: number): NetlinkSocket => {
    try {
      return NetlinkSocket.open(addon, nsFd, opts);
    } catch (e) {
      throw fromSystemError(e, { op: 'open socket in netns', object: opts.netnsPath ?? '(own)' });
    }
  };
  const sock = opts.netnsPath === undefined ? open(-1) : await withNetnsFd({ path: opts.netnsPath }, open);
  return new Netlink(sock, opts.netnsPath);
}

export class Netlink {
  constructor(
    private readonly sock: NetlinkSocket,
    /** For messages and logs only. */
    readonly netnsPath?: string,
  ) {}

  close(): void {
    this.sock.close();
  }

  /** Requests currently waiting for the kernel (at most maxInFlight). */
  get inFlight(): number {
    return this.sock.inFlight;
  }

  // ---- plumbing --------------------------------------------------------------

  /**
   * Runs a request and turns a kernel refusal into a WeftError. `describe` is
   * given the device's name, looked up only on failure when we hold just an
   * index, so the happy path costs no extra round trip.
   */
  private async call<T>(op: string, dev: LinkRef | undefined, describe: (devName: string) => string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isWeftError(e)) throw e;
      const ctx: OpContext = { op, object: describe(await this.devName(dev)) };
      if (e instanceof NetlinkErrno) throw kernelError(e.errno, ctx, e.extack);
      throw fromSystemError(e, ctx);
    }
  }

  private async devName(dev: LinkRef | undefined): Promise<string> {
    if (dev === undefined || typeof dev === 'string') return dev ?? '';
    const link = await this.getLink(dev).catch(() => undefined);
    return link?.name ?? `if${dev}`;
  }

  private async exec(op: string, dev: LinkRef | undefined, describe: (devName: string) => string, req: Request): Promise<void> {
    await this.call(op, dev, describe, () => this.sock.request(req));
  }

  private dump(what: string, req: Request) {
    return this.call(`list ${what}`, undefined, () => this.netnsLabel(), () => this.sock.dump(req));
  }

  private netnsLabel(): string {
    return this.netnsPath ? `in netns ${this.netnsPath}` : 'in own netns';
  }

  /** ifindex of a link; a name costs one lookup. */
  async index(ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') return ref;
    const link = await this.getLink(ref);
    if (!link) throw kernelError(ENODEV, { op: 'find link', object: ref });
    return link.index;
  }

  // ---- links -----------------------------------------------------------------

  async listLinks(): Promise<LinkInfo[]> {
    return (await this.dump('links', { type: RTM.GETLINK, header: m.ifinfomsg({}) })).map(m.decodeLink);
  }

  /** The link, or undefined when there is none by that name/index. */
  async getLink(ref: LinkRef): Promise<LinkInfo | undefined> {
    const body = typeof ref === 'number' ? m.linkByIndex(ref) : m.linkByName(ref);
    try {
      // dev undefined: naming the object must not look the link up again.
      const [msg] = await this.call('get link', undefined, () => String(ref), () => this.sock.request({ type: RTM.GETLINK, ...body }));
      return msg ? m.decodeLink(msg) : undefined;
    } catch (e) {
      if (isWeftError(e, 'KERNEL') && e.details.errno === 'ENODEV') return undefined;
      throw e;
    }
  }

  private async created(kind: string, name: string, body: m.Body): Promise<LinkInfo> {
    await this.exec(`create ${kind}`, name, (n) => n, { type: RTM.NEWLINK, flags: CREATE_EXCL, ...body });
    const link = await this.getLink(name);
    if (!link) throw new WeftError('KERNEL', `netlink: create ${kind} ${name}: created, but gone right after`, { op: `create ${kind}`, object: name });
    return link;
  }

  createBridge(spec: BridgeSpec): Promise<LinkInfo> {
    return this.created('bridge', spec.name, m.newBridge(spec));
  }

  /** Returns this end; the peer is created in spec.peerNetns when given. */
  createVeth(spec: VethSpec): Promise<LinkInfo> {
    const peer = { name: spec.peerName, mtu: spec.peerMtu ?? spec.mtu, mac: spec.peerMac };
    const make = (peerNsFd?: number) => this.created('veth', spec.name, m.newVeth({ ...spec, peer, peerNsFd }));
    return spec.peerNetns ? withNetnsFd(spec.peerNetns, make) : make();
  }

  async createVxlan(spec: VxlanSpec): Promise<LinkInfo> {
    const devIndex = spec.dev === undefined ? undefined : await this.index(spec.dev);
    return this.created('vxlan', spec.name, m.newVxlan({ ...spec, devIndex }));
  }

  private async change(ref: LinkRef, what: string, change: m.LinkChange): Promise<void> {
    const index = await this.index(ref);
    await this.exec('set link', ref, (n) => `${n} ${what}`, { type: RTM.NEWLINK, ...m.setLink(index, change) });
  }

  setUp(ref: LinkRef): Promise<void> {
    return this.change(ref, 'up', { up: true });
  }

  setDown(ref: LinkRef): Promise<void> {
    return this.change(ref, 'down', { up: false });
  }

  setMtu(ref: LinkRef, mtu: number): Promise<void> {
    return this.change(ref, `mtu ${mtu}`, { mtu });
  }

  /** null detaches from the current master. */
  async setMaster(ref: LinkRef, master: LinkRef | null): Promise<void> {
    const masterIndex = master === null ? 0 : await this.index(master);
    return this.change(ref, master === null ? 'nomaster' : `master ${master}`, { masterIndex });
  }

  setMac(ref: LinkRef, mac: string): Promise<void> {
    return this.change(ref, `address ${mac}`, { mac });
  }

  rename(ref: LinkRef, name: string): Promise<void> {
    return this.change(ref, `name ${name}`, { name });
  }

  /** Moves the link into another namespace (it disappears from this one). */
  async setNetns(ref: LinkRef, ns: NetnsRef): Promise<void> {
    const index = await this.index(ref);
    const label = 'path' in ns ? ns.path : `fd ${ns.fd}`;
    return withNetnsFd(ns, (fd) =>
      this.exec('set link', ref, (n) => `${n} netns ${label}`, { type: RTM.NEWLINK, ...m.setLink(index, { nsFd: fd }) }),
    );
  }

  async deleteLink(ref: LinkRef): Promise<void> {
    const index = await this.index(ref);
    await this.exec('delete link', ref, (n) => n, { type: RTM.DELLINK, ...m.linkByIndex(index) });
  }

  // ---- addresses -------------------------------------------------------------

  async listAddresses(dev?: LinkRef): Promise<AddressInfo[]> {
    const index = dev === undefined ? undefined : await this.index(dev);
    const all = (await this.dump('addresses', { type: RTM.GETADDR, header: m.ifaddrmsg({ family: AF.UNSPEC }) })).map(
      m.decodeAddress,
    );
    return index === undefined ? all : all.filter((a) => a.index === index);
  }

  /** Exclusive: EEXIST when the address is already there. */
  async addAddress(dev: LinkRef, cidr: string): Promise<void> {
    const body = m.address(await this.index(dev), cidr);
    await this.exec('add address', dev, (n) => `${cidr} dev ${n}`, { type: RTM.NEWADDR, flags: CREATE_EXCL, ...body });
  }

  async deleteAddress(dev: LinkRef, cidr: string): Promise<void> {
    const body = m.address(await this.index(dev), cidr);
    await this.exec('delete address', dev, (n) => `${cidr} dev ${n}`, { type: RTM.DELADDR, ...body });
  }

  // ---- routes ----------------------------------------------------------------

  /** IPv4 routes of one table (main by default), optionally one protocol (e.g. RTPROT_WEFT) or device. */
  async listRoutes(filter: RouteFilter = {}): Promise<RouteInfo[]> {
    const table = filter.table ?? RT_TABLE_MAIN;
    const routes = (await this.dump('routes', { type: RTM.GETROUTE, header: m.rtmsg({ family: AF.INET }) })).map(m.decodeRoute);
    return routes.filter(
      (r) =>
        r.table === table &&
        (filter.proto === undefined || r.proto === filter.proto) &&
        (filter.dev === undefined || r.dev === filter.dev),
    );
  }

  private static routeReq(op: string, type: number, flags: number, spec: RouteSpec, devIndex: number | undefined, forDelete: boolean): Prepared {
    const describe = (n: string) => [spec.dst, spec.gateway && `via ${spec.gateway}`, n && `dev ${n}`].filter(Boolean).join(' ');
    return { op, dev: spec.dev, describe, req: { type, flags, ...m.route(spec, devIndex, forDelete) } };
  }

  private async routeOp(op: string, type: number, flags: number, spec: RouteSpec, forDelete: boolean): Promise<void> {
    const devIndex = spec.dev === undefined ? undefined : await this.index(spec.dev);
    const p = Netlink.routeReq(op, type, flags, spec, devIndex, forDelete);
    await this.exec(p.op, p.dev, p.describe, p.req);
  }

  /** Exclusive: EEXIST when a route to that prefix exists. Marked proto RTPROT_WEFT unless spec.proto says otherwise. */
  addRoute(spec: RouteSpec): Promise<void> {
    return this.routeOp('add route', RTM.NEWROUTE, CREATE_EXCL, spec, false);
  }

  replaceRoute(spec: RouteSpec): Promise<void> {
    return this.routeOp('replace route', RTM.NEWROUTE, CREATE_REPLACE, spec, false);
  }

  /** Matches dst/table and whichever of gateway, dev, proto are given; ESRCH when none matches. */
  deleteRoute(spec: RouteSpec): Promise<void> {
    return this.routeOp('delete route', RTM.DELROUTE, 0, spec, true);
  }

  // ---- neighbours ------------------------------------------------------------

  async listNeighbours(dev?: LinkRef): Promise<NeighInfo[]> {
    const index = dev === undefined ? undefined : await this.index(dev);
    const all = (await this.dump('neighbours', { type: RTM.GETNEIGH, ...m.neighDump(AF.INET) })).map(m.decodeNeighbour);
    return index === undefined ? all : all.filter((n) => n.dev === index);
  }

  private static neighReq(op: string, type: number, flags: number, dev: LinkRef, index: number, ip: string, mac?: string): Prepared {
    const describe = (n: string) => [ip, mac && `lladdr ${mac}`, `dev ${n}`].filter(Boolean).join(' ');
    return { op, dev, describe, req: { type, flags, ...m.neighbour(index, ip, mac) } };
  }

  private async neighOp(op: string, type: number, flags: number, dev: LinkRef, ip: string, mac?: string): Promise<void> {
    const p = Netlink.neighReq(op, type, flags, dev, await this.index(dev), ip, mac);
    await this.exec(p.op, p.dev, p.describe, p.req);
  }

  /** Permanent; exclusive (EEXIST when an entry for that IP exists). */
  addNeighbour(spec: NeighSpec): Promise<void> {
    return this.neighOp('add neighbour', RTM.NEWNEIGH, CREATE_EXCL, spec.dev, spec.ip, spec.mac);
  }

  /** Permanent; creates or overwrites. */
  replaceNeighbour(spec: NeighSpec): Promise<void> {
    return this.neighOp('replace neighbour', RTM.NEWNEIGH, CREATE_REPLACE, spec.dev, spec.ip, spec.mac);
  }

  deleteNeighbour(spec: { dev: LinkRef; ip: string }): Promise<void> {
    return this.neighOp('delete neighbour', RTM.DELNEIGH, 0, spec.dev, spec.ip);
  }

  // ---- FDB (VXLAN forwarding entries) ----------------------------------------

  /** Bridge-family FDB entries (every device, or one). */
  async listFdb(dev?: LinkRef): Promise<FdbInfo[]> {
    const index = dev === undefined ? undefined : await this.index(dev);
    const all = (await this.dump('fdb', { type: RTM.GETNEIGH, ...m.neighDump(AF.BRIDGE) })).map(m.decodeFdb);
    return index === undefined ? all : all.filter((f) => f.dev === index);
  }

  private static fdbReq(op: string, type: number, flags: number, spec: Omit<FdbSpec, 'dst'> & { dst?: string | undefined }, index: number): Prepared {
    const describe = (n: string) => [spec.mac, spec.dst && `dst ${spec.dst}`, `dev ${n}`, 'self permanent'].filter(Boolean).join(' ');
    return { op, dev: spec.dev, describe, req: { type, flags, ...m.fdb(index, spec.mac, spec.dst) } };
  }

  private async fdbOp(op: string, type: number, flags: number, spec: FdbSpec | (Omit<FdbSpec, 'dst'> & { dst?: string })): Promise<void> {
    const p = Netlink.fdbReq(op, type, flags, spec, await this.index(spec.dev));
    await this.exec(p.op, p.dev, p.describe, p.req);
  }

  /** Exclusive add (EEXIST when that MAC already has an entry). */
  addFdb(spec: FdbSpec): Promise<void> {
    return this.fdbOp('add fdb', RTM.NEWNEIGH, CREATE_EXCL, spec);
  }

  /** Adds one more destination for the MAC (the all-zero flood entry takes many). */
  appendFdb(spec: FdbSpec): Promise<void> {
    return this.fdbOp('append fdb', RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.APPEND, spec);
  }

  replaceFdb(spec: FdbSpec): Promise<void> {
    return this.fdbOp('replace fdb', RTM.NEWNEIGH, CREATE_REPLACE, spec);
  }

  /** With dst: only that destination; without: the MAC's entry. */
  deleteFdb(spec: Omit<FdbSpec, 'dst'> & { dst?: string }): Promise<void> {
    return this.fdbOp('delete fdb', RTM.DELNEIGH, 0, spec);
  }

  // ---- bulk ------------------------------------------------------------------

  private static prepare(op: BulkOp): Prepared {
    switch (op.kind) {
      case 'replace-neigh':
        return Netlink.neighReq('replace neighbour', RTM.NEWNEIGH, CREATE_REPLACE, op.dev, op.dev, op.ip, op.mac);
      case 'delete-neigh':
        return Netlink.neighReq('delete neighbour', RTM.DELNEIGH, 0, op.dev, op.dev, op.ip);
      case 'replace-fdb':
        return Netlink.fdbReq('replace fdb', RTM.NEWNEIGH, CREATE_REPLACE, op, op.dev);
      case 'delete-fdb':
        return Netlink.fdbReq('delete fdb', RTM.DELNEIGH, 0, op, op.dev);
      case 'replace-route':
        return Netlink.routeReq('replace route', RTM.NEWROUTE, CREATE_REPLACE, op.route, op.route.dev, false);
      case 'delete-route': {
        const dev = op.route.dev;
        if (typeof dev === 'string') throw new WeftError('INTERNAL', `netlink bulk: delete route ${op.route.dst} names its device by name; give the ifindex`);
        return Netlink.routeReq('delete route', RTM.DELROUTE, 0, op.route, dev, true);
      }
    }
  }

  /**
   * Many independent writes in a few syscalls (see socket.ts requestBatch),
   * in order; one outcome per op: undefined when done, else the WeftError
   * the single-op method would have thrown.
   */
  async bulk(ops: readonly BulkOp[]): Promise<(WeftError | undefined)[]> {
    const prepared = ops.map((op) => Netlink.prepare(op));
    const outcomes = await this.sock.requestBatch(prepared.map((p) => p.req));
    const names = new Map<LinkRef | undefined, string>();
    const result: (WeftError | undefined)[] = [];
    for (const [i, e] of outcomes.entries()) {
      if (e === undefined) {
        result.push(undefined);
        continue;
      }
      const p = prepared[i]!;
      // Device names are looked up only for failures, once per device.
      if (!names.has(p.dev)) names.set(p.dev, await this.devName(p.dev));
      const ctx: OpContext = { op: p.op, object: p.describe(names.get(p.dev)!) };
      result.push(e instanceof NetlinkErrno ? kernelError(e.errno, ctx, e.extack) : fromSystemError(e, ctx));
    }
    return result;
  }
}
