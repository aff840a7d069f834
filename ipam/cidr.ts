// IPv4 address and prefix arithmetic for the control plane: parsing and
// printing addresses, prefixes and flannel's subnet keys, and walking the
// leasable subnet range of a network config by index.
//
// Addresses are unsigned 32-bit integers (normalised with `>>> 0`), not
// strings or byte arrays, so that comparisons, masks and "the n-th subnet"
// are plain integer operations and never materialise a list of subnets.
// Parsing is strict on purpose: etcd values and configs are written by other
// programs, and a lenient parser (leading zeros, short forms) would read the
// same text differently from flannel's Go parser.

import { WeftError } from './errors.js';
import type { Cidr, NetworkConfig } from './types.js';

const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const PREFIX_LEN = /^(?:[0-9]|[12][0-9]|3[0-2])$/;

function invalid(message: string, input: string): WeftError {
  return new WeftError('INVALID_ARGUMENT', message, { input });
}

/** Parses a strict dotted quad ("10.42.0.1"; no leading zeros, no spaces). */
export function parseIp(s: string): number {
  if (typeof s !== 'string') throw invalid(`not an IPv4 address: ${String(s)}`, String(s));
  const parts = s.split('.');
  if (parts.length !== 4) throw invalid(`not an IPv4 address: "${s}"`, s);
  let n = 0;
  for (const p of parts) {
    // Leading zeros are rejected because some parsers read them as octal.
    if (!OCTET.test(p)) throw invalid(`not an IPv4 address: "${s}"`, s);
    const v = Number(p);
    if (v > 255) throw invalid(`not an IPv4 address: "${s}" (octet ${p} > 255)`, s);
    n = n * 256 + v;
  }
  return n >>> 0;
}

export function formatIp(n: number): string {
  const u = n >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}`;
}

/** The netmask of a prefix length as an unsigned integer (`maskOf(24)` = 0xffffff00). */
export function maskOf(len: number): number {
  if (!Number.isInteger(len) || len < 0 || len > 32) {
    throw new WeftError('INVALID_ARGUMENT', `prefix length ${len} is not in 0..32`, { len });
  }
  // A shift by 32 is a shift by 0 in JS, so /0 needs its own case.
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * Parses "a.b.c.d/len" without requiring the address to be the network
 * address: the form of interface addresses and of FLANNEL_SUBNET.
 */
export function parseAddrPrefix(s: string): { addr: number; len: number } {
  if (typeof s !== 'string') throw invalid(`not an IPv4 prefix: ${String(s)}`, String(s));
  const slash = s.indexOf('/');
  if (slash < 0) throw invalid(`not an IPv4 prefix: "${s}" (missing /length)`, s);
  const lenText = s.slice(slash + 1);
  if (!PREFIX_LEN.test(lenText) || (lenText.length > 1 && lenText.startsWith('0'))) {
    throw invalid(`not an IPv4 prefix: "${s}" (length must be 0..32)`, s);
  }
  return { addr: parseIp(s.slice(0, slash)), len: Number(lenText) };
}

/** Parses a network prefix; host bits set is an error that suggests the intended prefix. */
export function parseCidr(s: string): Cidr {
  const { addr, len } = parseAddrPrefix(s);
  const net = (addr & maskOf(len)) >>> 0;
  if (net !== addr) {
    throw invalid(`${s} has host bits set; did you mean ${formatIp(net)}/${len}?`, s);
  }
  return { addr, len };
}

/** The network containing `addr` at prefix length `len` (host bits cleared). */
export function cidrOf(addr: number, len: number): Cidr {
  return { addr: (addr & maskOf(len)) >>> 0, len };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.addr)}/${c.len}`;
}

/** Number of addresses in the prefix (2^32 for /0, so a float-safe number, not a u32). */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.len);
}

/** Last address of the prefix (the broadcast address for len < 31). */
export function lastAddress(c: Cidr): number {
  return (c.addr + cidrSize(c) - 1) >>> 0;
}

export function cidrEquals(a: Cidr, b: Cidr): boolean {
  return a.addr === b.addr && a.len === b.len;
}

/** True if `inner` (an address or a prefix) lies wholly inside `outer`. */
export function cidrContains(outer: Cidr, inner: number | Cidr): boolean {
  const mask = maskOf(outer.len);
  if (typeof inner === 'number') return ((inner & mask) >>> 0) === outer.addr;
  return inner.len >= outer.len && ((inner.addr & mask) >>> 0) === outer.addr;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  // Prefixes nest or are disjoint: they overlap iff the shorter contains the longer.
  return a.len <= b.len ? cidrContains(a, b) : cidrContains(b, a);
}

/** The i-th address of the prefix (0 = network address); throws outside it. */
export function nthAddress(c: Cidr, i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= cidrSize(c)) {
    throw new WeftError('INVALID_ARGUMENT', `address index ${i} is outside ${formatCidr(c)}`, {
      cidr: formatCidr(c),
      index: i,
    });
  }
  return (c.addr + i) >>> 0;
}

/**
 * Whether a container may use `ip` in `subnet`: inside it, and not the network
 * or broadcast address. /31 and /32 have neither (RFC 3021), so every address
 * counts. The gateway (first address) is the caller's business.
 */
export function isHostAddressUsable(subnet: Cidr, ip: number): boolean {
  if (!cidrContains(subnet, ip)) return false;
  if (subnet.len >= 31) return true;
  const u = ip >>> 0;
  return u !== subnet.addr && u !== lastAddress(subnet);
}

/** flannel's etcd key form of a subnet: `10.42.7.0-24`. */
export function subnetKey(c: Cidr): string {
  return `${formatIp(c.addr)}-${c.len}`;
}

/** Parses flannel's `10.42.7.0-24` strictly (host bits set is an error too). */
export function parseSubnetKey(s: string): Cidr {
  if (typeof s !== 'string') throw invalid(`not a subnet key: ${String(s)}`, String(s));
  const dash = s.lastIndexOf('-');
  if (dash < 0) throw invalid(`not a subnet key: "${s}" (expected form 10.42.7.0-24)`, s);
  try {
    return parseCidr(`${s.slice(0, dash)}/${s.slice(dash + 1)}`);
  } catch (e) {
    throw invalid(`not a subnet key: "${s}" (expected form 10.42.7.0-24): ${(e as Error).message}`, s);
  }
}

// ---- the leasable range of a network config -------------------------------

type SubnetRange = Pick<NetworkConfig, 'subnetLen' | 'subnetMin' | 'subnetMax'>;

/** How many subnets a host may lease: subnetMin..subnetMax in steps of one subnet. */
export function enumerateSubnets(cfg: SubnetRange): number {
  if (cfg.subnetMax < cfg.subnetMin) return 0;
  return Math.floor((cfg.subnetMax - cfg.subnetMin) / 2 ** (32 - cfg.subnetLen)) + 1;
}

/** The i-th leasable subnet (0-based), without building the list. */
export function subnetAt(cfg: SubnetRange, i: number): Cidr {
  const n = enumerateSubnets(cfg);
  if (!Number.isInteger(i) || i < 0 || i >= n) {
    throw new WeftError('INVALID_ARGUMENT', `subnet index ${i} is outside 0..${n - 1}`, { index: i, count: n });
  }
  return { addr: (cfg.subnetMin + i * 2 ** (32 - cfg.subnetLen)) >>> 0, len: cfg.subnetLen };
}

/**
 * Whether a leased subnet still fits the config: inside Network, of length
 * SubnetLen, between SubnetMin and SubnetMax (flannel's isSubnetConfigCompat,
 * plus the Network check). A lease that fails this is stale after a config change.
 */
export function isSubnetValidInConfig(cfg: Pick<NetworkConfig, 'network'> & SubnetRange, c: Cidr): boolean {
  return (
    c.len === cfg.subnetLen &&
    cidrContains(cfg.network, c) &&
    c.addr >= cfg.subnetMin &&
    c.addr <= cfg.subnetMax &&
    ((c.addr & maskOf(c.len)) >>> 0) === c.addr
  );
}
