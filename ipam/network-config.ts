// The network config at `<prefix>/config`: validation, defaults and
// serialisation, with flannel's field names and flannel's rules
// (pkg/subnet/config.go CheckNetworkConfig and the backends' RegisterNetwork),
// so that a config written for flannel means the same thing to weft.
//
// Where flannel is lenient through Go's encoding/json, weft follows it on
// purpose: keys match case-insensitively, `null` means "absent", `0` means
// "default" for SubnetLen, SubnetMin, SubnetMax and Port, and a Network with
// host bits set is masked (with a warning). Everything weft rejects gets a
// configError naming flannel's field, and everything it ignores a warning.

import { configError } from './errors.js';
import {
  cidrContains,
  formatCidr,
  formatIp,
  lastAddress,
  maskOf,
  parseAddrPrefix,
  parseIp,
  cidrOf,
} from './cidr.js';
import type { BackendConfig, BackendType, NetworkConfig } from './types.js';

export const DEFAULT_BACKEND: BackendType = 'vxlan';
export const DEFAULT_VNI = 1;
export const MAX_VNI = 0xffffff;
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UDP_PORT = 8285;
export const SUPPORTED_BACKENDS: readonly BackendType[] = ['vxlan', 'udp'];

export interface ParsedNetworkConfig {
  readonly config: NetworkConfig;
  /** One line per field that was accepted but has no effect in weft. */
  readonly warnings: string[];
}

// flannel fields that weft accepts and does not use (anything else unknown
// gets a "typo?" warning instead).
const IGNORED_TOP = new Set(
  ['EnableNFTables', 'Networks', 'IPv6Networks', 'IPv6Network', 'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax'].map(
    (k) => k.toLowerCase(),
  ),
);
const IGNORED_BACKEND = new Set(
  ['GBP', 'Learning', 'DirectRouting', 'MTU', 'MacPrefix', 'VNI'].map((k) => k.toLowerCase()),
);

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  let text: string;
  try {
    // JSON.stringify gives undefined for undefined and functions, and throws on bigint.
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return `${Array.isArray(v) ? 'array' : typeof v} ${text.length > 40 ? `${text.slice(0, 37)}...` : text}`;
}

/**
 * Reads one object's fields the way Go's encoding/json fills a struct: a key
 * matches a field name case-insensitively, the last matching key wins, and
 * null counts as absent. Remembers which keys were read so that the rest
 * can be reported.
 */
class FieldReader {
  private readonly used = new Set<string>();

  constructor(
    private readonly obj: JsonObject,
    private readonly path: string,
  ) {}

  private field(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  raw(name: string): unknown {
    let value: unknown;
    for (const [k, v] of Object.entries(this.obj)) {
      if (k.toLowerCase() === name.toLowerCase()) {
        this.used.add(k);
        value = v;
      }
    }
    return value === null ? undefined : value;
  }

  string(name: string, example: string): string | undefined {
    const v = this.raw(name);
    if (v !== undefined && typeof v !== 'string') {
      throw configError(this.field(name), `must be a string such as "${example}", got ${describe(v)}`);
    }
    return v;
  }

  uint(name: string, max?: number): number | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw configError(this.field(name), `must be a non-negative integer, got ${describe(v)}`);
    }
    if (max !== undefined && v > max) throw configError(this.field(name), `must be in 0..${max}, got ${v}`);
    return v;
  }

  bool(name: string): boolean | undefined {
    const v = this.raw(name);
    if (v !== undefined && typeof v !== 'boolean') {
      throw configError(this.field(name), `must be true or false, got ${describe(v)}`);
    }
    return v;
  }

  /** Warnings for the keys never read: flannel fields weft ignores, or unknown ones. */
  warnUnused(knownIgnored: ReadonlySet<string>, warnings: string[]): void {
    for (const k of Object.keys(this.obj)) {
      if (this.used.has(k)) continue;
      warnings.push(
        knownIgnored.has(k.toLowerCase())
          ? `${this.field(k)}: flannel option not used by weft; ignored`
          : `${this.field(k)}: unknown field; ignored (typo?)`,
      );
    }
  }
}

function parseRoot(input: unknown): JsonObject {
  let value = input;
  if (value instanceof Uint8Array) value = new TextDecoder().decode(value);
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (e) {
      throw configError('(root)', `not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isObject(value)) {
    throw configError('(root)', `must be a JSON object such as {"Network": "10.42.0.0/16"}, got ${describe(value)}`);
  }
  return value;
}

function parseIpField(field: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    const ip = parseIp(text);
    // flannel reads 0.0.0.0 as "not set" and fills in the default.
    return ip === 0 ? undefined : ip;
  } catch (e) {
    throw configError(field, (e as Error).message);
  }
}

function parseBackend(raw: unknown, warnings: string[]): BackendConfig {
  if (raw === undefined) return { type: DEFAULT_BACKEND, vni: DEFAULT_VNI, port: DEFAULT_VXLAN_PORT };
  if (!isObject(raw)) throw configError('Backend', `must be an object such as {"Type": "vxlan"}, got ${describe(raw)}`);
  const r = new FieldReader(raw, 'Backend');
  const typeText = r.string('Type', 'vxlan');
  // flannel's backend manager lower-cases the type before looking it up.
  const type = typeText === undefined ? DEFAULT_BACKEND : typeText.toLowerCase();
  if (!(SUPPORTED_BACKENDS as readonly string[]).includes(type)) {
    throw configError(
      'Backend.Type',
      `"${typeText}" is not supported (yet); allowed values: ${SUPPORTED_BACKENDS.map((t) => `"${t}"`).join(', ')}`,
    );
  }
  const portValue = r.uint('Port', 65535);
  let config: BackendConfig;
  if (type === 'vxlan') {
    // Unlike Port, flannel passes an explicit VNI 0 to the kernel as VNI 0,
    // so 0 stays 0 here: hosts sharing one config must agree on the VNI.
    const vni = r.uint('VNI', MAX_VNI) ?? DEFAULT_VNI;
    config = { type, vni, port: portValue || DEFAULT_VXLAN_PORT };
  } else {
    // weft's own field: seal every datagram (encap/udp). flannel has no such field.
    const encrypt = r.bool('Encrypt') ?? false;
    config = { type: 'udp', vni: DEFAULT_VNI, port: portValue || DEFAULT_UDP_PORT, ...(encrypt ? { encrypt } : {}) };
  }
  r.warnUnused(IGNORED_BACKEND, warnings);
  return config;
}

/** Validates a flannel-style network config and fills in flannel's defaults; also lists ignored fields. */
export function parseNetworkConfigWithWarnings(input: unknown): ParsedNetworkConfig {
  const warnings: string[] = [];
  const r = new FieldReader(parseRoot(input), '');

  if (r.bool('EnableIPv6') === true) {
    throw configError('EnableIPv6', 'IPv6 not supported yet; remove EnableIPv6 or set it to false');
  }
  if (r.bool('EnableIPv4') === false) {
    throw configError('EnableIPv4', 'weft needs IPv4 (IPv6 not supported yet); remove EnableIPv4 or set it to true');
  }

  const networkText = r.string('Network', '10.42.0.0/16');
  if (networkText === undefined) throw configError('Network', 'is required, e.g. "Network": "10.42.0.0/16"');
  let prefix: { addr: number; len: number };
  try {
    prefix = parseAddrPrefix(networkText);
  } catch (e) {
    throw configError('Network', (e as Error).message);
  }
  const network = cidrOf(prefix.addr, prefix.len);
  if (network.len === 0) {
    throw configError('Network', `${networkText} is the whole address space; give a real network such as "10.42.0.0/16"`);
  }
  if (network.addr !== prefix.addr) {
    // flannel masks silently; a warning keeps a flannel user's config working.
    warnings.push(`Network: ${networkText} has host bits set; using ${formatCidr(network)}`);
  }

  // flannel treats SubnetLen 0 as absent.
  let subnetLen = r.uint('SubnetLen') ?? 0;
  if (subnetLen > 0) {
    if (subnetLen > 30) throw configError('SubnetLen', `SubnetLen must be less than /31, got ${subnetLen}`);
    if (subnetLen < network.len + 2) {
      throw configError(
        'SubnetLen',
        `Network must be able to accommodate at least four subnets: SubnetLen ${subnetLen} in a /${network.len} ` +
          `needs to be at least ${network.len + 2}`,
      );
    }
  } else if (network.len > 28) {
    throw configError('Network', `Network is too small. Minimum useful network prefix is /28, got /${network.len}`);
  } else {
    subnetLen = network.len <= 22 ? 24 : network.len + 2;
  }

  const step = 2 ** (32 - subnetLen);
  const mask = maskOf(subnetLen);
  // The first subnet is skipped by default: its .0 address is the network address of Network.
  const subnetMin = checkBound('SubnetMin', r, network.addr + step);
  const subnetMax = checkBound('SubnetMax', r, (lastAddress(network) - step + 1) >>> 0);
  if (subnetMin > subnetMax) {
    throw configError('SubnetMin', `SubnetMin ${formatIp(subnetMin)} is above SubnetMax ${formatIp(subnetMax)}`);
  }

  function checkBound(field: 'SubnetMin' | 'SubnetMax', reader: FieldReader, dflt: number): number {
    const ip = parseIpField(field, reader.string(field, formatIp(dflt)));
    if (ip === undefined) return dflt;
    if (!cidrContains(network, ip)) {
      throw configError(field, `${field} is not in the range of the Network: ${formatIp(ip)} is outside ${formatCidr(network)}`);
    }
    if (((ip & mask) >>> 0) !== ip) {
      throw configError(
        field,
        `${field} is not on a SubnetLen boundary: ${formatIp(ip)} (the /${subnetLen} holding it starts at ${formatIp((ip & mask) >>> 0)})`,
      );
    }
    return ip;
  }

  const backend = parseBackend(r.raw('Backend'), warnings);
  r.warnUnused(IGNORED_TOP, warnings);

  return { config: { network, subnetLen, subnetMin, subnetMax, backend }, warnings };
}

/** Validates a flannel-style network config (JSON text or an already parsed object). */
export function parseNetworkConfig(input: unknown): NetworkConfig {
  return parseNetworkConfigWithWarnings(input).config;
}

/** The config in flannel's form, every default written out; parses back to an equal config. */
export function serializeNetworkConfig(cfg: NetworkConfig): string {
  const backend =
    cfg.backend.type === 'vxlan'
      ? { Type: 'vxlan', VNI: cfg.backend.vni, Port: cfg.backend.port }
      : { Type: cfg.backend.type, Port: cfg.backend.port, ...(cfg.backend.encrypt ? { Encrypt: true } : {}) };
  return JSON.stringify({
    Network: formatCidr(cfg.network),
    SubnetLen: cfg.subnetLen,
    SubnetMin: formatIp(cfg.subnetMin),
    SubnetMax: formatIp(cfg.subnetMax),
    Backend: backend,
  });
}
