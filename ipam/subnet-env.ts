// subnet.env, the file tools read to learn this host's share of the overlay
// (docker's --bip, CNI's flannel plugin), written with weft's names and
// flannel's so that both kinds of consumer work unchanged. Like flannel, the
// subnet is written as its first address (the gateway) with the prefix length:
// FLANNEL_SUBNET=10.42.7.1/24. The parser is the agent's own way back to its
// previous subnet after a restart, so it is tolerant: either name set, quotes,
// comments, and a bad line loses only that value.

import { WeftError } from './errors.js';
import { cidrOf, formatCidr, nthAddress, parseAddrPrefix } from './cidr.js';
import type { Cidr } from './types.js';

export interface SubnetEnv {
  readonly network: Cidr;
  /** The host subnet (network address form, e.g. 10.42.7.0/24). */
  readonly subnet: Cidr;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

export interface ParsedSubnetEnv {
  network?: Cidr;
  subnet?: Cidr;
  /** The address written in the SUBNET line (the bridge gateway, normally subnet + 1). */
  gateway?: number;
  mtu?: number;
  ipMasq?: boolean;
}

// weft's names first: they win over the FLANNEL_ copies when both are present.
const PREFIXES = ['WEFT_', 'FLANNEL_'] as const;

export function renderSubnetEnv(env: SubnetEnv): string {
  if (!Number.isInteger(env.mtu) || env.mtu <= 0) {
    throw new WeftError('INVALID_ARGUMENT', `subnet.env: MTU must be a positive integer, got ${env.mtu}`, { mtu: env.mtu });
  }
  const values = {
    NETWORK: formatCidr(env.network),
    SUBNET: formatCidr({ addr: nthAddress(env.subnet, 1), len: env.subnet.len }),
    MTU: String(env.mtu),
    IPMASQ: String(env.ipMasq),
  };
  return PREFIXES.flatMap((p) => Object.entries(values).map(([k, v]) => `${p}${k}=${v}`)).join('\n') + '\n';
}

function readVars(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim().replace(/^export\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    vars.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim().replace(/^(["'])(.*)\1$/, '$2'));
  }
  return vars;
}

/** Reads whatever it can from a subnet.env; missing or malformed values are left out. */
export function parseSubnetEnv(text: string): ParsedSubnetEnv {
  const vars = readVars(text);
  const get = <T>(name: string, parse: (v: string) => T | undefined): T | undefined => {
    for (const p of PREFIXES) {
      const raw = vars.get(p + name);
      if (raw === undefined) continue;
      try {
        const v = parse(raw);
        if (v !== undefined) return v;
      } catch {
        // A malformed value under one name may still be good under the other.
      }
    }
    return undefined;
  };

  const out: ParsedSubnetEnv = {};
  const network = get('NETWORK', (v) => {
    const p = parseAddrPrefix(v);
    return cidrOf(p.addr, p.len);
  });
  if (network) out.network = network;
  const sub = get('SUBNET', parseAddrPrefix);
  if (sub) {
    out.subnet = cidrOf(sub.addr, sub.len);
    out.gateway = sub.addr;
  }
  const mtu = get('MTU', (v) => (/^[1-9][0-9]*$/.test(v) ? Number(v) : undefined));
  if (mtu !== undefined) out.mtu = mtu;
  const ipMasq = get('IPMASQ', (v) => (v === 'true' ? true : v === 'false' ? false : undefined));
  if (ipMasq !== undefined) out.ipMasq = ipMasq;
  return out;
}
