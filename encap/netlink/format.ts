// Text <-> wire conversions for MAC and IP addresses and CIDR prefixes as the
// netlink codec needs them. Pure and strict (bad input is an INVALID_ARGUMENT
// WeftError, never a half-written kernel request), so unit tests cover them
// without root.

import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { WeftError } from '../../ipam/errors.js';
import { AF } from './constants.js';

export function invalid(what: string, value: unknown): WeftError {
  return new WeftError('INVALID_ARGUMENT', `netlink: invalid ${what}: ${JSON.stringify(value)}`, { what, value });
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function parseMac(mac: string): Buffer {
  if (!MAC_RE.test(mac)) throw invalid('MAC address', mac);
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

const HEX2 = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

export function formatMac(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (i ? ':' : '') + HEX2[bytes[i]!]!;
  return s;
}

/** Address family of an IP literal: AF_INET or AF_INET6. */
export function ipFamily(ip: string): number {
  const v = isIP(ip);
  if (v === 4) return AF.INET;
  if (v === 6) return AF.INET6;
  throw invalid('IP address', ip);
}

// Dotted-quad IPv4 without leading zeros: the form weft writes and the kernel
// reads back. Parsed by hand because bulk programming encodes thousands of
// them per pass and ipaddr.js allocates several objects per address; anything
// else (IPv6) takes the general path.
const IPV4_OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${IPV4_OCTET}\\.${IPV4_OCTET}\\.${IPV4_OCTET}\\.${IPV4_OCTET}$`);

export function parseIp(ip: string): Buffer {
  const q = typeof ip === 'string' ? IPV4_RE.exec(ip) : null;
  if (q) return Buffer.from([Number(q[1]), Number(q[2]), Number(q[3]), Number(q[4])]);
  ipFamily(ip); // validates: ipaddr.js alone also takes "10.1" and hex forms
  return Buffer.from(ipaddr.parse(ip).toByteArray());
}

export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw invalid('IP address bytes', Array.from(bytes));
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

export interface Prefix {
  ip: string;
  prefixLen: number;
  family: number;
}

/** "10.42.3.0/24" (or a bare address, taken as a host prefix). */
export function parsePrefix(cidr: string): Prefix {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = ipFamily(ip);
  const max = family === AF.INET ? 32 : 128;
  const lenText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw invalid('prefix', cidr);
  // A valid dotted quad is already in canonical form.
  return { ip: IPV4_RE.test(ip) ? ip : ipaddr.parse(ip).toString(), prefixLen: Number(lenText), family };
}

export function formatPrefix(ip: string, prefixLen: number): string {
  return `${ip}/${prefixLen}`;
}

/** Big-endian 16-bit (ports inside IFLA_VXLAN_PORT are network order). */
export function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
