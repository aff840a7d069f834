// rtnetlink message shaping: the family headers (ifinfomsg, ifaddrmsg, rtmsg,
// ndmsg), the attribute sets for each request weft makes, and the decoders
// that turn kernel replies into the plain objects of types.ts. Pure: links
// are already resolved to ifindexes and netns to fds by the caller, so every
// request is checked byte for byte in unit tests.

import { type Attr, type NlMsg, decodeAttrs, encodeAttrs, nla, payloadAttrs, read } from './codec.js';
import {
  AF,
  IFF_UP,
  IFLA,
  IFLA_INFO,
  IFLA_VXLAN,
  IFA,
  NDA,
  NTF,
  NUD_PERMANENT,
  RTA,
  RTN_UNICAST,
  RTNH_F_ONLINK,
  RTPROT_WEFT,
  RT_SCOPE,
  RT_TABLE_MAIN,
  VETH_INFO_PEER,
} from './constants.js';
import { be16, invalid, formatIp, formatMac, formatPrefix, ipFamily, parseIp, parseMac, parsePrefix } from './format.js';
import type { AddressInfo, FdbInfo, LinkCommon, LinkInfo, NeighInfo, RouteInfo, RouteSpec, VxlanInfo, VxlanSpec } from './types.js';

/** A request body: the family header plus its attributes. */
export interface Body {
  header: Buffer;
  attrs: Attr[];
}

export const IFINFOMSG_LEN = 16;
export const IFADDRMSG_LEN = 8;
export const RTMSG_LEN = 12;
export const NDMSG_LEN = 12;

export function ifinfomsg(h: { family?: number; index?: number; flags?: number; change?: number }): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(h.family ?? AF.UNSPEC, 0);
  b.writeInt32LE(h.index ?? 0, 4);
  b.writeUInt32LE(h.flags ?? 0, 8);
  b.writeUInt32LE(h.change ?? 0, 12);
  return b;
}

export function ifaddrmsg(h: { family: number; prefixLen?: number; scope?: number; index?: number }): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(h.family, 0);
  b.writeUInt8(h.prefixLen ?? 0, 1);
  b.writeUInt8(h.scope ?? 0, 3);
  b.writeUInt32LE(h.index ?? 0, 4);
  return b;
}

export function rtmsg(h: {
  family: number;
  dstLen?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(h.family, 0);
  b.writeUInt8(h.dstLen ?? 0, 1);
  b.writeUInt8(h.table ?? 0, 4);
  b.writeUInt8(h.protocol ?? 0, 5);
  b.writeUInt8(h.scope ?? 0, 6);
  b.writeUInt8(h.type ?? 0, 7);
  b.writeUInt32LE(h.flags ?? 0, 8);
  return b;
}

export function ndmsg(h: { family: number; index?: number; state?: number; flags?: number }): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(h.family, 0);
  b.writeInt32LE(h.index ?? 0, 4);
  b.writeUInt16LE(h.state ?? 0, 8);
  b.writeUInt8(h.flags ?? 0, 10);
  return b;
}

// ---- links ----------------------------------------------------------------

function commonLinkAttrs(spec: Partial<LinkCommon>): Attr[] {
  const attrs: Attr[] = [];
  if (spec.name !== undefined) attrs.push(nla.str(IFLA.IFNAME, spec.name));
  if (spec.mtu !== undefined) attrs.push(nla.u32(IFLA.MTU, spec.mtu));
  if (spec.mac !== undefined) attrs.push(nla.raw(IFLA.ADDRESS, parseMac(spec.mac)));
  return attrs;
}

function linkInfo(kind: string, data?: Attr[]): Attr {
  const info: Attr[] = [nla.str(IFLA_INFO.KIND, kind)];
  if (data) info.push(nla.nest(IFLA_INFO.DATA, data));
  return nla.nest(IFLA.LINKINFO, info);
}

export function newBridge(spec: LinkCommon): Body {
  return { header: ifinfomsg({}), attrs: [...commonLinkAttrs(spec), linkInfo('bridge')] };
}

export function newVeth(spec: LinkCommon & { peer: LinkCommon; peerNsFd?: number }): Body {
  const peerAttrs = commonLinkAttrs(spec.peer);
  if (spec.peerNsFd !== undefined) peerAttrs.push(nla.u32(IFLA.NET_NS_FD, spec.peerNsFd));
  // VETH_INFO_PEER carries a whole ifinfomsg + attributes for the other end.
  const peerBody = Buffer.concat([ifinfomsg({}), encodeAttrs(peerAttrs)]);
  return {
    header: ifinfomsg({}),
    attrs: [...commonLinkAttrs(spec), linkInfo('veth', [nla.raw(VETH_INFO_PEER, peerBody)])],
  };
}

export function newVxlan(spec: VxlanSpec & { devIndex?: number }): Body {
  const data: Attr[] = [nla.u32(IFLA_VXLAN.ID, spec.vni)];
  if (spec.devIndex !== undefined) data.push(nla.u32(IFLA_VXLAN.LINK, spec.devIndex));
  if (spec.local !== undefined) {
    if (ipFamily(spec.local) !== AF.INET) throw invalid('vxlan local address (IPv4 only)', spec.local);
    data.push(nla.raw(IFLA_VXLAN.LOCAL, parseIp(spec.local)));
  }
  if (spec.ttl !== undefined) data.push(nla.u8(IFLA_VXLAN.TTL, spec.ttl));
  data.push(nla.u8(IFLA_VXLAN.LEARNING, spec.learning ? 1 : 0));
  data.push(nla.raw(IFLA_VXLAN.PORT, be16(spec.port ?? 8472)));
  return { header: ifinfomsg({}), attrs: [...commonLinkAttrs(spec), linkInfo('vxlan', data)] };
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** 0 detaches from the current master. */
  masterIndex?: number;
  mac?: string;
  name?: string;
  nsFd?: number;
}

/** RTM_NEWLINK without CREATE on an existing index: only the given fields change. */
export function setLink(index: number, change: LinkChange): Body {
  const up = change.up;
  const attrs = commonLinkAttrs(change);
  if (change.masterIndex !== undefined) attrs.push(nla.u32(IFLA.MASTER, change.masterIndex));
  if (change.nsFd !== undefined) attrs.push(nla.u32(IFLA.NET_NS_FD, change.nsFd));
  return {
    header: ifinfomsg({ index, flags: up ? IFF_UP : 0, change: up === undefined ? 0 : IFF_UP }),
    attrs,
  };
}

export function linkByName(name: string): Body {
  return { header: ifinfomsg({}), attrs: [nla.str(IFLA.IFNAME, name)] };
}

export function linkByIndex(index: number): Body {
  return { header: ifinfomsg({ index }), attrs: [] };
}

function decodeVxlan(data: Buffer): VxlanInfo {
  const a = decodeAttrs(data);
  const local = a.get(IFLA_VXLAN.LOCAL);
  const learning = read.u8(a.get(IFLA_VXLAN.LEARNING));
  const info: VxlanInfo = { vni: read.u32(a.get(IFLA_VXLAN.ID)) ?? 0 };
  if (local && local.length === 4) info.local = formatIp(local);
  const port = read.u16be(a.get(IFLA_VXLAN.PORT));
  if (port !== undefined) info.port = port;
  if (learning !== undefined) info.learning = learning !== 0;
  const dev = read.u32(a.get(IFLA_VXLAN.LINK));
  if (dev) info.dev = dev;
  const ttl = read.u8(a.get(IFLA_VXLAN.TTL));
  if (ttl !== undefined) info.ttl = ttl;
  return info;
}

export function decodeLink(msg: NlMsg): LinkInfo {
  const p = msg.payload;
  const a = payloadAttrs(msg, IFINFOMSG_LEN);
  const link: LinkInfo = {
    index: p.readInt32LE(4),
    name: read.str(a.get(IFLA.IFNAME)) ?? '',
    mtu: read.u32(a.get(IFLA.MTU)) ?? 0,
    up: (p.readUInt32LE(8) & IFF_UP) !== 0,
  };
  const mac = a.get(IFLA.ADDRESS);
  if (mac && mac.length > 0) link.mac = formatMac(mac);
  const master = read.u32(a.get(IFLA.MASTER));
  if (master) link.masterIndex = master;
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const ia = decodeAttrs(info);
    const kind = read.str(ia.get(IFLA_INFO.KIND));
    if (kind) link.kind = kind;
    const data = ia.get(IFLA_INFO.DATA);
    if (kind === 'vxlan' && data) link.vxlan = decodeVxlan(data);
  }
  return link;
}

// ---- addresses ------------------------------------------------------------

export function address(index: number, cidr: string): Body {
  const p = parsePrefix(cidr);
  const ip = parseIp(p.ip);
  // IFA_LOCAL is the address itself; IFA_ADDRESS the peer (same on broadcast links).
  return {
    header: ifaddrmsg({ family: p.family, prefixLen: p.prefixLen, index }),
    attrs: [nla.raw(IFA.LOCAL, ip), nla.raw(IFA.ADDRESS, ip)],
  };
}

export function decodeAddress(msg: NlMsg): AddressInfo {
  const p = msg.payload;
  const a = payloadAttrs(msg, IFADDRMSG_LEN);
  const bytes = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  const info: AddressInfo = {
    family: p.readUInt8(0),
    prefixLen: p.readUInt8(1),
    scope: p.readUInt8(3),
    index: p.readUInt32LE(4),
    address: bytes ? formatIp(bytes) : '',
  };
  const label = read.str(a.get(IFA.LABEL));
  if (label) info.label = label;
  return info;
}

// ---- routes ---------------------------------------------------------------

/**
 * A route request. For deletes the kernel matches on what is given, so scope
 * is NOWHERE ("any") and protocol/gateway/dev only narrow when set.
 */
export function route(spec: RouteSpec, devIndex: number | undefined, forDelete: boolean): Body {
  const dst = parsePrefix(spec.dst);
  const table = spec.table ?? RT_TABLE_MAIN;
  const scope = forDelete
    ? (spec.scope ?? RT_SCOPE.NOWHERE)
    : (spec.scope ?? (spec.gateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK));
  const attrs: Attr[] = [nla.raw(RTA.DST, parseIp(dst.ip))];
  if (table > 255) attrs.push(nla.u32(RTA.TABLE, table));
  if (spec.gateway !== undefined) {
    if (ipFamily(spec.gateway) !== dst.family) throw invalid(`gateway for ${spec.dst}`, spec.gateway);
    attrs.push(nla.raw(RTA.GATEWAY, parseIp(spec.gateway)));
  }
  if (devIndex !== undefined) attrs.push(nla.u32(RTA.OIF, devIndex));
  if (spec.metric !== undefined) attrs.push(nla.u32(RTA.PRIORITY, spec.metric));
  if (spec.src !== undefined) attrs.push(nla.raw(RTA.PREFSRC, parseIp(spec.src)));
  return {
    header: rtmsg({
      family: dst.family,
      dstLen: dst.prefixLen,
      table: table > 255 ? 0 : table,
      protocol: forDelete ? (spec.proto ?? 0) : (spec.proto ?? RTPROT_WEFT),
      scope,
      type: forDelete ? 0 : RTN_UNICAST,
      flags: spec.onlink ? RTNH_F_ONLINK : 0,
    }),
    attrs,
  };
}

export function decodeRoute(msg: NlMsg): RouteInfo {
  const p = msg.payload;
  const a = payloadAttrs(msg, RTMSG_LEN);
  const family = p.readUInt8(0);
  const dstBytes = a.get(RTA.DST);
  const dstIp = dstBytes ? formatIp(dstBytes) : family === AF.INET6 ? '::' : '0.0.0.0';
  const info: RouteInfo = {
    dst: formatPrefix(dstIp, p.readUInt8(1)),
    table: read.u32(a.get(RTA.TABLE)) ?? p.readUInt8(4),
    proto: p.readUInt8(5),
    scope: p.readUInt8(6),
    type: p.readUInt8(7),
    onlink: (p.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(RTA.GATEWAY);
  if (gw) info.gateway = formatIp(gw);
  const oif = read.u32(a.get(RTA.OIF));
  if (oif !== undefined) info.dev = oif;
  const metric = read.u32(a.get(RTA.PRIORITY));
  if (metric !== undefined) info.metric = metric;
  const src = a.get(RTA.PREFSRC);
  if (src) info.src = formatIp(src);
  return info;
}

// ---- neighbours and FDB -----------------------------------------------------

/** An ARP/NDP entry; `mac` only on add/replace, and always permanent. */
export function neighbour(index: number, ip: string, mac?: string): Body {
  const attrs: Attr[] = [nla.raw(NDA.DST, parseIp(ip))];
  if (mac !== undefined) attrs.push(nla.raw(NDA.LLADDR, parseMac(mac)));
  return { header: ndmsg({ family: ipFamily(ip), index, state: NUD_PERMANENT }), attrs };
}

/** A bridge FDB entry in the VXLAN device's own table (NTF_SELF): MAC -> remote VTEP. */
export function fdb(index: number, mac: string, dst?: string): Body {
  const attrs: Attr[] = [nla.raw(NDA.LLADDR, parseMac(mac))];
  if (dst !== undefined) attrs.push(nla.raw(NDA.DST, parseIp(dst)));
  return { header: ndmsg({ family: AF.BRIDGE, index, state: NUD_PERMANENT, flags: NTF.SELF }), attrs };
}

export function neighDump(family: number): Body {
  return { header: ndmsg({ family }), attrs: [] };
}

function ndFields(msg: NlMsg): { family: number; dev: number; state: number; flags: number; a: Map<number, Buffer> } {
  const p = msg.payload;
  return {
    family: p.readUInt8(0),
    dev: p.readInt32LE(4),
    state: p.readUInt16LE(8),
    flags: p.readUInt8(10),
    a: payloadAttrs(msg, NDMSG_LEN),
  };
}

export function decodeNeighbour(msg: NlMsg): NeighInfo {
  const { dev, state, flags, a } = ndFields(msg);
  const dst = a.get(NDA.DST);
  const info: NeighInfo = { dev, ip: dst ? formatIp(dst) : '', state, permanent: (state & NUD_PERMANENT) !== 0, flags };
  const mac = a.get(NDA.LLADDR);
  if (mac && mac.length > 0) info.mac = formatMac(mac);
  return info;
}

export function decodeFdb(msg: NlMsg): FdbInfo {
  const { dev, state, flags, a } = ndFields(msg);
  const mac = a.get(NDA.LLADDR);
  const info: FdbInfo = {
    dev,
    mac: mac ? formatMac(mac) : '',
    state,
    permanent: (state & NUD_PERMANENT) !== 0,
    self: (flags & NTF.SELF) !== 0,
  };
  const dst = a.get(NDA.DST);
  if (dst) info.dst = formatIp(dst);
  const master = read.u32(a.get(NDA.MASTER));
  if (master) info.master = master;
  const vni = read.u32(a.get(NDA.VNI));
  if (vni !== undefined) info.vni = vni;
  const port = read.u16be(a.get(NDA.PORT));
  if (port !== undefined) info.port = port;
  return info;
}

/** Family of a neighbour/FDB message (to tell the two apart in one stream). */
export function ndFamily(msg: NlMsg): number {
  return msg.payload.readUInt8(0);
}
