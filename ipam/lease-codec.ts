// The wire form of a subnet lease in etcd, flannel's exactly:
//   key   <prefix>/subnets/10.42.7.0-24
//   value {"PublicIP":"192.0.2.10","BackendType":"vxlan","BackendData":{"VtepMAC":"..."}}
// Values are written by every agent of the cluster (flannel's too), so
// decoding trusts nothing: a garbage value is an INVALID_ARGUMENT naming the
// key, and decodeLeases turns each one into a skip so that one bad key never
// hides the other hosts' leases. Fields weft does not use (PublicIPv6,
// BackendV6Data) are ignored rather than rejected.

import { WeftError } from './errors.js';
import { formatIp, parseIp, parseSubnetKey, subnetKey } from './cidr.js';
import type { Cidr, Lease, LeaseAttrs } from './types.js';

/** One key-value pair as listed from etcd, already turned into strings. */
export interface RawLeaseKv {
  readonly key: string;
  readonly value: string;
  /** etcd lease ID as a decimal string ('0' if none). */
  readonly leaseId: string;
  readonly modRevision: number;
}

export interface DecodedLeases {
  readonly leases: Lease[];
  readonly skipped: { key: string; reason: string }[];
}

function normalisePrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/** `<prefix>/subnets/`, the range every lease key lives under (prefix as for the config key). */
export function subnetsPrefix(prefix: string): string {
  return `${normalisePrefix(prefix)}/subnets/`;
}

export function leaseKey(prefix: string, subnet: Cidr): string {
  return subnetsPrefix(prefix) + subnetKey(subnet);
}

export function encodeLeaseAttrs(a: LeaseAttrs): string {
  // Validate what we publish: every other agent would skip a bad PublicIP.
  const publicIP = formatIp(parseIp(a.publicIP));
  return JSON.stringify({ PublicIP: publicIP, BackendType: a.backendType, BackendData: a.backendData });
}

function garbage(key: string, reason: string): WeftError {
  return new WeftError('INVALID_ARGUMENT', `lease ${key}: ${reason}`, { key, reason });
}

/**
 * Decodes one lease key and value. `prefix` is the network prefix (the one
 * `<prefix>/config` lives under, e.g. `/weft/network`). Throws INVALID_ARGUMENT
 * naming the key for anything unparseable.
 */
export function decodeLease(
  key: string,
  value: string,
  meta: { leaseId: string; modRevision: number },
  prefix: string,
): Lease {
  const under = subnetsPrefix(prefix);
  if (!key.startsWith(under)) throw garbage(key, `key is not under ${under}`);
  let subnet: Cidr;
  try {
    subnet = parseSubnetKey(key.slice(under.length));
  } catch (e) {
    throw garbage(key, (e as Error).message);
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (e) {
    throw garbage(key, `value is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw garbage(key, 'value is not a JSON object');
  }
  const v = parsed as Record<string, unknown>;

  if (typeof v.PublicIP !== 'string') throw garbage(key, 'PublicIP is missing or not a string');
  let publicIP: string;
  try {
    publicIP = formatIp(parseIp(v.PublicIP));
  } catch (e) {
    throw garbage(key, `PublicIP: ${(e as Error).message}`);
  }

  // flannel omits BackendType and BackendData when empty (host-gw has no BackendData).
  const backendType = v.BackendType ?? '';
  if (typeof backendType !== 'string') throw garbage(key, 'BackendType is not a string');
  const backendData = v.BackendData ?? {};
  if (typeof backendData !== 'object' || Array.isArray(backendData)) {
    throw garbage(key, 'BackendData is not a JSON object');
  }

  return {
    subnet,
    attrs: { publicIP, backendType, backendData: backendData as Record<string, unknown> },
    leaseId: meta.leaseId,
    modRevision: meta.modRevision,
  };
}

/** Decodes a listing; never throws: each undecodable pair becomes a `skipped` entry. */
export function decodeLeases(kvs: Iterable<RawLeaseKv>, prefix: string): DecodedLeases {
  const leases: Lease[] = [];
  const skipped: { key: string; reason: string }[] = [];
  for (const kv of kvs) {
    try {
      leases.push(decodeLease(kv.key, kv.value, kv, prefix));
    } catch (e) {
      skipped.push({ key: kv.key, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  return { leases, skipped };
}
