// Plain-data shapes of the kernel objects the data plane manages, as the
// netlink wrapper takes and returns them. Plain objects (no classes, addresses
// as text) so planners and reconcilers compare them with ordinary code.

/** A link by ifindex (cheapest: no lookup) or by name. */
export type LinkRef = number | string;

/** A network namespace: a path like /run/netns/NAME or /proc/PID/ns/net, or an open fd. */
export type NetnsRef = { path: string } | { fd: number };

export interface VxlanInfo {
  vni: number;
  /** Source address of encapsulated packets. */
  local?: string;
  /** UDP destination port. */
  port?: number;
  learning?: boolean;
  /** ifindex of the underlay device. */
  dev?: number;
  ttl?: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  /** "bridge", "veth", "vxlan", "tun", ...; undefined for plain devices like lo. */
  kind?: string;
  mtu: number;
  mac?: string;
  /** Administratively up (IFF_UP). */
  up: boolean;
  masterIndex?: number;
  vxlan?: VxlanInfo;
}

export interface LinkCommon {
  name: string;
  mtu?: number;
  mac?: string;
}

export type BridgeSpec = LinkCommon;

export interface VethSpec extends LinkCommon {
  peerName: string;
  /** Where the peer goes (e.g. a container's netns); default: beside this end. */
  peerNetns?: NetnsRef;
  peerMtu?: number;
  peerMac?: string;
}

export interface VxlanSpec extends LinkCommon {
  vni: number;
  local?: string;
  /** Default 8472 (the Linux/flannel port, not IANA's 4789). */
  port?: number;
  /** Default false: weft programs FDB and neighbours itself. */
  learning?: boolean;
  dev?: LinkRef;
  ttl?: number;
}

export interface AddressInfo {
  index: number;
  family: number;
  address: string;
  prefixLen: number;
  scope: number;
  label?: string;
}

export interface RouteSpec {
  /** "10.42.3.0/24"; a bare address is a host route. */
  dst: string;
  gateway?: string;
  dev?: LinkRef;
  /** Trust the gateway to be on-link without a matching connected route (VXLAN next hops). */
  onlink?: boolean;
  /** Default: link scope without a gateway, universe with one (as `ip route` does). */
  scope?: number;
  /** Default RTPROT_WEFT, so weft can list exactly the routes it owns. */
  proto?: number;
  /** Default main (254). */
  table?: number;
  metric?: number;
  src?: string;
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: number;
  onlink: boolean;
  scope: number;
  proto: number;
  table: number;
  /** RTN_* (1 = unicast, 2 = local, 3 = broadcast, ...). */
  type: number;
  metric?: number;
  src?: string;
}

export interface RouteFilter {
  /** Default main (254). */
  table?: number;
  proto?: number;
  dev?: number;
}

export interface NeighSpec {
  dev: LinkRef;
  ip: string;
  mac: string;
}

export interface NeighInfo {
  dev: number;
  ip: string;
  mac?: string;
  /** NUD_* bits. */
  state: number;
  permanent: boolean;
  flags: number;
}

export interface FdbSpec {
  /** The VXLAN device. */
  dev: LinkRef;
  /** A remote VTEP's MAC, or 00:00:00:00:00:00 for the flood/default entry. */
  mac: string;
  /** The remote VTEP's underlay IP. */
  dst: string;
}

export interface FdbInfo {
  dev: number;
  mac: string;
  dst?: string;
  state: number;
  permanent: boolean;
  /** NTF_SELF: the entry lives in the device's (vxlan's) own table. */
  self: boolean;
  master?: number;
  vni?: number;
  port?: number;
}
