// Which address and MAC the runtime asked for. CNI carries a request in three
// places, and runtimes use different ones: `runtimeConfig.ips`/`mac` (the
// capabilities the conflist declares), `args.cni.ips`/`mac` in the config (the
// CNI conventions), and `IP=`/`MAC=` in CNI_ARGS (podman 4.3, as host-local and
// bridge read them). A request is never silently ignored: weft gives one IPv4
// address per interface, so each place may name at most one IPv4 address, and
// places that disagree are refused (code 7, both fields named) instead of one
// quietly winning. The field that asked is kept, so a later refusal (outside
// the host subnet, already taken) names it. Pure.

import type { CniArgs } from './args.js';
import * as json from './decode.js';
import type { JsonObject } from './decode.js';
import { invalidConfig } from './errors.js';
import { bareAddress as bare, ipFamily, normalizeMac } from './syntax.js';

export interface Requested {
  /** The address asked for, without prefix length, and where it came from ("CNI_ARGS IP"). */
  ip?: { address: string; field: string };
  mac?: { value: string; field: string };
}

interface Candidate {
  field: string;
  value: string;
}

/** At most one IPv4 address per place; IPv6 is refused because weft would not give it. */
function addressOf(field: string, list: readonly string[] | undefined): Candidate | undefined {
  if (list === undefined || list.length === 0) return undefined;
  list.forEach((text, i) => {
    const f = ipFamily(bare(text));
    if (f === undefined) throw invalidConfig(`${field}[${i}]`, `${JSON.stringify(text)} is not an IP address`);
    if (f === 6) throw invalidConfig(`${field}[${i}]`, `${text}: weft gives containers IPv4 addresses only; remove the IPv6 address`);
  });
  if (list.length > 1) throw invalidConfig(field, `asks for ${list.length} addresses (${list.join(', ')}); weft gives one IPv4 address per interface`);
  return { field, value: bare(list[0]!) };
}

/** The one value all places agree on, or code 7 naming the two that differ. */
function agree(what: string, candidates: (Candidate | undefined)[]): Candidate | undefined {
  const given = candidates.filter((c): c is Candidate => c !== undefined);
  const first = given[0];
  const other = given.find((c) => c.value !== first?.value);
  if (first !== undefined && other !== undefined) {
    throw invalidConfig(other.field, `asks for ${what} ${other.value} but ${first.field} asks for ${first.value}; give one`);
  }
  return first;
}

/** `args.cni` of the config (the CNI conventions' place for ips and mac), type-checked. */
function conventionArgs(args: JsonObject | undefined): { ips?: string[]; mac?: string } {
  const cni = args === undefined ? undefined : json.optObject(args, 'cni', 'args');
  if (cni === undefined) return {};
  const ips = json.optStringList(cni, 'ips', 'args.cni');
  const rawMac = json.optString(cni, 'mac', 'args.cni');
  const mac = rawMac === undefined ? undefined : normalizeMac(rawMac);
  if (rawMac !== undefined && mac === undefined) throw invalidConfig('args.cni.mac', `${JSON.stringify(rawMac)} is not a unicast MAC like "c2:11:22:33:44:55"`);
  return json.defined({ ips, mac });
}

export function requestedIdentity(conf: { ips?: string[]; mac?: string; args?: JsonObject }, args: Pick<CniArgs, 'ips' | 'mac'>): Requested {
  const conv = conventionArgs(conf.args);
  const ip = agree('address', [addressOf('runtimeConfig.ips', conf.ips), addressOf('args.cni.ips', conv.ips), addressOf('CNI_ARGS IP', args.ips)]);
  const macOf = (field: string, value: string | undefined): Candidate | undefined => (value === undefined ? undefined : { field, value });
  const mac = agree('MAC', [macOf('runtimeConfig.mac', conf.mac), macOf('args.cni.mac', conv.mac), macOf('CNI_ARGS MAC', args.mac)]);
  return json.defined({
    ip: ip === undefined ? undefined : { address: ip.value, field: ip.field },
    mac: mac === undefined ? undefined : { value: mac.value, field: mac.field },
  });
}
