// The network configuration on stdin: decode, pick the protocol version,
// check the fields, and keep what the agent needs. weft rejects fields it does
// not act on (code 2) instead of ignoring them: an `ipam` section or a
// `portMappings` capability copied from another plugin's config would
// otherwise look as if it were in force.

import { CniError, CniErrorCode, decodeError, invalidConfig, unsupportedField } from './errors.js';
import * as json from './decode.js';
import type { JsonObject } from './decode.js';
import { parseDns, parseResult, type Dns, type InternalResult } from './result.js';
import type { GcAttachment } from './service.js';
import { cidrFamily, identifierProblem, normalizeMac } from './syntax.js';
import { requireCommandVersion, selectVersion, type CniCommand, type CniVersion } from './version.js';

export const DEFAULT_TYPE = 'weft';
export const DEFAULT_RUN_DIR = '/run/weft';

/** The capabilities weft honours through runtimeConfig. */
export const CAPABILITIES = ['mac', 'ips'] as const;

/** libcni injects both spellings for GC: the spec text used each in one place (containernetworking/cni#1101). */
export const GC_KEYS = ['cni.dev/valid-attachments', 'cni.dev/attachments'] as const;

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  runDir: string;
  mtu?: number;
  dns?: Dns;
  /** runtimeConfig.mac, lower case. */
  mac?: string;
  /** runtimeConfig.ips, each an address with prefix length. */
  ips?: string[];
  args?: JsonObject;
  prevResult?: InternalResult;
  /** GC only: the attachments the runtime still knows (both GC keys, merged). */
  validAttachments?: GcAttachment[];
}

export interface ConfigOptions {
  /** The `type` weft answers to; the executable's name when it is installed under another. */
  pluginType?: string;
}

/** Keys with a meaning for weft or for the protocol; anything else is code 2. */
const KNOWN_KEYS = new Set([
  'cniVersion',
  'cniVersions',
  'name',
  'type',
  'runDir',
  // Read by the weft-cni relay (its deadline for the agent's answer); validated here too.
  'timeoutSeconds',
  'mtu',
  'dns',
  'ipam',
  'ipMasq',
  'capabilities',
  'runtimeConfig',
  'args',
  'prevResult',
  // List-level flags for the runtime; harmless if a runtime copies them down.
  'disableCheck',
  'disableGC',
]);

/** IPv4's minimum datagram size and the largest value an MTU can hold. */
const MTU_MIN = 68;
const MTU_MAX = 65535;

export function parseConfig(stdin: string, command: CniCommand, opts: ConfigOptions = {}): NetConf {
  const conf = decodeJson(stdin);
  const cniVersion = selectVersion(conf['cniVersion'], conf['cniVersions']);
  requireCommandVersion(command, cniVersion);

  const name = requiredString(conf, 'name');
  const nameProblem = identifierProblem(name);
  if (nameProblem !== undefined) throw invalidConfig('name', nameProblem);
  const type = requiredString(conf, 'type');
  const expected = opts.pluginType ?? DEFAULT_TYPE;
  if (type !== expected) throw invalidConfig('type', `is ${JSON.stringify(type)}, this plugin is ${JSON.stringify(expected)}`);

  rejectUnsupportedKeys(conf);
  checkTimeoutSeconds(conf);
  const runtime = parseRuntimeConfig(conf);
  const prev = conf['prevResult'];
  const dns = json.optObject(conf, 'dns', '');

  return json.defined({
    cniVersion,
    name,
    type,
    runDir: parseRunDir(conf),
    mtu: parseMtu(conf),
    dns: dns === undefined ? undefined : parseDns(dns, 'dns'),
    mac: runtime.mac,
    ips: runtime.ips,
    args: json.optObject(conf, 'args', ''),
    prevResult: prev === undefined ? undefined : parseResult(prev),
    validAttachments: command === 'GC' ? parseValidAttachments(conf) : undefined,
  });
}

function decodeJson(stdin: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      'failed to decode network config',
      e instanceof Error ? e.message : String(e),
    );
  }
  if (!json.isObject(parsed)) throw decodeError('network config', 'a JSON object', parsed);
  return parsed;
}

function requiredString(conf: JsonObject, key: string): string {
  const v = json.optString(conf, key, '');
  if (v === undefined || v === '') throw invalidConfig(key, 'missing');
  return v;
}

function rejectUnsupportedKeys(conf: JsonObject): void {
  for (const [key, value] of Object.entries(conf)) {
    // Reserved for the protocol: new runtime-generated keys must not break weft.
    if (key.startsWith('cni.dev/')) continue;
    if (key === 'plugins') {
      throw invalidConfig('plugins', 'this is a configuration list; a runtime runs each plugin with its own entry');
    }
    if (!KNOWN_KEYS.has(key)) {
      throw unsupportedField(key, value, 'weft does not know this field; remove it from the network config');
    }
  }
  const ipam = conf['ipam'];
  if (ipam !== undefined && !(json.isObject(ipam) && Object.keys(ipam).length === 0)) {
    throw unsupportedField('ipam', ipam, 'weft allocates addresses from its own host subnet; remove the ipam section');
  }
  if (json.optBoolean(conf, 'ipMasq', '') === true) {
    throw unsupportedField('ipMasq', true, 'masquerading is an agent setting in weft, not a per-network one');
  }
  const caps = json.optObject(conf, 'capabilities', '') ?? {};
  for (const key of Object.keys(caps)) {
    const on = json.optBoolean(caps, key, 'capabilities');
    if (on === true && !(CAPABILITIES as readonly string[]).includes(key)) {
      throw unsupportedField(`capabilities.${key}`, true, `weft honours only the ${CAPABILITIES.join(' and ')} capabilities`);
    }
  }
}

/**
 * The runtime fills runtimeConfig only with capabilities the config declared,
 * so whatever arrives here was asked for. Keys weft does not use are left
 * alone: they can only come from capabilities set to false or from runtimes
 * that add extra keys.
 */
function parseRuntimeConfig(conf: JsonObject): { mac?: string; ips?: string[] } {
  const rc = json.optObject(conf, 'runtimeConfig', '');
  if (rc === undefined) return {};
  const rawMac = json.optString(rc, 'mac', 'runtimeConfig');
  const mac = rawMac === undefined ? undefined : normalizeMac(rawMac);
  if (rawMac !== undefined && mac === undefined) {
    throw invalidConfig('runtimeConfig.mac', `${JSON.stringify(rawMac)} is not a unicast MAC like "c2:11:22:33:44:55"`);
  }
  const ips = json.optStringList(rc, 'ips', 'runtimeConfig');
  ips?.forEach((ip, i) => {
    if (cidrFamily(ip) === undefined) {
      const rule = `${JSON.stringify(ip)} is not an address with prefix length like "10.42.7.5/24"`;
      throw invalidConfig(`runtimeConfig.ips[${i}]`, rule);
    }
  });
  return json.defined({ mac, ips });
}

function parseRunDir(conf: JsonObject): string {
  const dir = json.optString(conf, 'runDir', '') ?? DEFAULT_RUN_DIR;
  if (!dir.startsWith('/')) throw invalidConfig('runDir', `${JSON.stringify(dir)} is not an absolute path`);
  return dir;
}

function checkTimeoutSeconds(conf: JsonObject): void {
  const t = json.optInteger(conf, 'timeoutSeconds', '');
  if (t !== undefined && (t < 1 || t > 300)) throw invalidConfig('timeoutSeconds', `${t} is outside 1..300`);
}

function parseMtu(conf: JsonObject): number | undefined {
  const mtu = json.optInteger(conf, 'mtu', '');
  if (mtu !== undefined && (mtu < MTU_MIN || mtu > MTU_MAX)) {
    throw invalidConfig('mtu', `${mtu} is outside ${MTU_MIN}..${MTU_MAX}`);
  }
  return mtu;
}

/**
 * Without the list, GC would take "no valid attachments" for "free them all",
 * so a missing key is an error while an empty list is a real answer.
 */
function parseValidAttachments(conf: JsonObject): GcAttachment[] {
  const lists = GC_KEYS.flatMap((key) => {
    const list = json.optList(conf, key, '');
    return list === undefined ? [] : [{ key, list }];
  });
  if (lists.length === 0) throw invalidConfig(GC_KEYS[0], 'missing: GC needs the list of attachments still in use');
  // Both spellings count: keeping an attachment by mistake is harmless, freeing one is not.
  const byKey = new Map<string, GcAttachment>();
  for (const { key, list } of lists) {
    list.forEach((item, i) => {
      const path = `${key}[${i}]`;
      const o = json.object(item, path);
      const containerId = json.optString(o, 'containerID', path);
      const ifname = json.optString(o, 'ifname', path);
      if (containerId === undefined) throw decodeError(`${path}.containerID`, 'a string', undefined);
      if (ifname === undefined) throw decodeError(`${path}.ifname`, 'a string', undefined);
      byKey.set(`${containerId}\0${ifname}`, { containerId, ifname });
    });
  }
  return [...byKey.values()];
}
