// One result type inside weft, and its shapes on the wire per spec version.
// The agent answers in InternalResult; only formatResult knows that 0.3.x and
// 0.4.0 put "version" in every ips[] entry, that 1.0.0 dropped it, and that
// interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope
// exist from 1.1.0 on. parseResult reads any of those shapes back, so a
// prevResult from another plugin survives a pass through weft.

import { decodeError } from './errors.js';
import * as json from './decode.js';
import type { JsonObject } from './decode.js';
import { cidrFamily, ipFamily } from './syntax.js';
import { hasIpVersionField, hasV11Fields, type CniVersion } from './version.js';

export interface ResultInterface {
  name: string;
  mac?: string;
  /** The netns path for a container-side interface; absent for host-side ones. */
  sandbox?: string;
  /** 1.1.0 and later only. */
  mtu?: number;
  socketPath?: string;
  pciID?: string;
}

export interface ResultIp {
  /** Host address with prefix length, e.g. `10.42.7.5/24`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  /** The rest are 1.1.0 additions. */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface InternalResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: Dns;
}

const V11_INTERFACE_KEYS = ['mtu', 'socketPath', 'pciID'] as const;
const V11_ROUTE_KEYS = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;

/** The result as the runtime expects it for `version`; `cniVersion` is the config's. */
export function formatResult(result: InternalResult, version: CniVersion): JsonObject {
  const v11 = hasV11Fields(version);
  const out: JsonObject = {
    cniVersion: version,
    interfaces: result.interfaces.map((i) =>
      json.defined({ name: i.name, mac: i.mac, sandbox: i.sandbox, ...(v11 && pick(i, V11_INTERFACE_KEYS)) }),
    ),
    ips: result.ips.map((ip) =>
      json.defined({
        // Trust the address over any stored "version": it cannot disagree with itself.
        version: hasIpVersionField(version) ? String(cidrFamily(ip.address) ?? 4) : undefined,
        address: ip.address,
        gateway: ip.gateway,
        interface: ip.interface,
      }),
    ),
    routes: result.routes.map((r) => json.defined({ dst: r.dst, gw: r.gw, ...(v11 && pick(r, V11_ROUTE_KEYS)) })),
  };
  if (!isEmptyDns(result.dns)) out['dns'] = json.defined({ ...result.dns });
  return out;
}

/**
 * Reads a result of any supported shape (0.3.0 to 1.1.0). Wrong JSON types
 * and malformed addresses are decoding failures (code 6): the content is not
 * a result weft can carry forward. The 0.1/0.2 shape (`ip4`/`ip6`) is refused
 * by name, since weft never accepts configs that old.
 */
export function parseResult(raw: unknown, field = 'prevResult'): InternalResult {
  const obj = json.object(raw, field);
  if (obj['ips'] === undefined && (obj['ip4'] !== undefined || obj['ip6'] !== undefined)) {
    throw decodeError(field, 'a result of version 0.3.0 or later (ips[], not ip4/ip6)', obj);
  }
  return {
    interfaces: entries(obj, 'interfaces', field, parseInterface),
    ips: entries(obj, 'ips', field, parseIp),
    routes: entries(obj, 'routes', field, parseRoute),
    dns: parseDns(json.optObject(obj, 'dns', field), `${field}.dns`),
  };
}

/** Reshapes a prevResult for another spec version (e.g. a 0.4.0 result under a 1.0.0 config). */
export function convertPrevResult(raw: unknown, toVersion: CniVersion): JsonObject {
  return formatResult(parseResult(raw), toVersion);
}

/**
 * ADD with a prevResult: weft's interfaces follow the earlier ones, so its
 * `ips[].interface` indexes shift by their count; routes append, leaving out
 * exact repeats; DNS keeps the earlier plugin's fields and fills the gaps.
 */
export function mergeResults(prev: InternalResult, mine: InternalResult): InternalResult {
  const offset = prev.interfaces.length;
  const seen = new Set(prev.routes.map(routeKey));
  return {
    interfaces: [...prev.interfaces, ...mine.interfaces],
    ips: [
      ...prev.ips,
      ...mine.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset })),
    ],
    routes: [...prev.routes, ...mine.routes.filter((r) => !seen.has(routeKey(r)))],
    dns: overlayDns(mine.dns, prev.dns),
  };
}

/** Field by field, `top` wins where it says anything. */
export function overlayDns(base: Dns, top: Dns): Dns {
  return json.defined({
    nameservers: top.nameservers ?? base.nameservers,
    domain: top.domain ?? base.domain,
    search: top.search ?? base.search,
    options: top.options ?? base.options,
  });
}

export function isEmptyDns(dns: Dns): boolean {
  return !dns.nameservers?.length && !dns.domain && !dns.search?.length && !dns.options?.length;
}

/** Checks `nameservers` entries are addresses; used for results and for the config's `dns`. */
export function parseDns(obj: JsonObject | undefined, path: string): Dns {
  if (obj === undefined) return {};
  const dns = json.defined({
    nameservers: json.optStringList(obj, 'nameservers', path),
    domain: json.optString(obj, 'domain', path),
    search: json.optStringList(obj, 'search', path),
    options: json.optStringList(obj, 'options', path),
  });
  dns.nameservers?.forEach((ns, i) => {
    if (ipFamily(ns) === undefined) throw decodeError(`${path}.nameservers[${i}]`, 'an IP address', ns);
  });
  return dns;
}

function entries<T>(obj: JsonObject, key: string, path: string, parse: (o: JsonObject, p: string) => T): T[] {
  return (json.optList(obj, key, path) ?? []).map((item, i) => {
    const p = `${path}.${key}[${i}]`;
    return parse(json.object(item, p), p);
  });
}

function parseInterface(o: JsonObject, p: string): ResultInterface {
  const name = json.optString(o, 'name', p);
  if (name === undefined) throw decodeError(`${p}.name`, 'a string', undefined);
  return json.defined({
    name,
    mac: json.optString(o, 'mac', p),
    sandbox: json.optString(o, 'sandbox', p),
    mtu: json.optInteger(o, 'mtu', p),
    socketPath: json.optString(o, 'socketPath', p),
    pciID: json.optString(o, 'pciID', p),
  });
}

function parseIp(o: JsonObject, p: string): ResultIp {
  const address = json.optString(o, 'address', p);
  if (address === undefined || cidrFamily(address) === undefined) {
    throw decodeError(`${p}.address`, 'an address with prefix length, like 10.42.7.5/24', o['address']);
  }
  const gateway = json.optString(o, 'gateway', p);
  if (gateway !== undefined && ipFamily(gateway) === undefined) {
    throw decodeError(`${p}.gateway`, 'an IP address', gateway);
  }
  return json.defined({ address, gateway, interface: json.optInteger(o, 'interface', p) });
}

function parseRoute(o: JsonObject, p: string): ResultRoute {
  const dst = json.optString(o, 'dst', p);
  if (dst === undefined || cidrFamily(dst) === undefined) {
    throw decodeError(`${p}.dst`, 'a CIDR, like 0.0.0.0/0', o['dst']);
  }
  const gw = json.optString(o, 'gw', p);
  if (gw !== undefined && ipFamily(gw) === undefined) throw decodeError(`${p}.gw`, 'an IP address', gw);
  return json.defined({
    dst,
    gw,
    mtu: json.optInteger(o, 'mtu', p),
    advmss: json.optInteger(o, 'advmss', p),
    priority: json.optInteger(o, 'priority', p),
    table: json.optInteger(o, 'table', p),
    scope: json.optInteger(o, 'scope', p),
  });
}

function routeKey(r: ResultRoute): string {
  return `${r.dst} via ${r.gw ?? ''}`;
}

function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
