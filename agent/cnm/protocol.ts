// Docker's remote plugin protocols (libnetwork docs/remote.md and docs/ipam.md):
// the shapes of requests and replies, and pure parsing of the requests. Every
// parser throws a WeftError naming the field, so the server can answer a
// request it cannot use with a message an operator understands.
//
// Two details of the protocols shape this module: the NetworkDriver reports
// failures as `{"Err": …}` and the IpamDriver as `{"Error": …}` (both with
// HTTP 200); and libnetwork sends bodies without a Content-Type, ending in a
// newline, fields in Go's capitalised names, absent fields often as null.

import { WeftError } from '../../ipam/errors.js';

export const NETWORK_DRIVER = 'NetworkDriver';
export const IPAM_DRIVER = 'IpamDriver';
/** Docker's plugin API media type; its client sends it in Accept. */
export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1.2+json';
/** IpamDriver.RequestAddress option marking the request for the network's gateway. */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway';
/** ProgramExternalConnectivity option carrying `-p` bindings. */
export const PORTMAP_OPTION = 'com.docker.network.portmap';
/** The one address space weft offers (each host's subnet is its pool in it). */
export const ADDRESS_SPACE = 'weft';

export type Obj = Record<string, unknown>;

function bad(field: string, message: string): WeftError {
  return new WeftError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

export function asObject(body: unknown, what: string): Obj {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new WeftError('INVALID_ARGUMENT', `${what}: the request body must be a JSON object`);
  return body as Obj;
}

export function str(o: Obj, field: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${typeof v}`);
  if (v.length > 4096) throw bad(field, 'is longer than 4096 characters');
  return v;
}

export function required(o: Obj, field: string): string {
  const v = str(o, field);
  if (v === undefined) throw bad(field, 'is required');
  return v;
}

/** Docker's network and endpoint IDs: 64 hex digits; bounded and plain so they are safe in file names and logs. */
const ID = /^[A-Za-z0-9_.-]{1,128}$/;

export function id(o: Obj, field: string): string {
  const v = required(o, field);
  if (!ID.test(v)) throw bad(field, `"${v.slice(0, 80)}" is not a Docker ID`);
  return v;
}

export function map(o: Obj, field: string): Obj {
  const v = o[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(field, 'must be an object');
  return v as Obj;
}

// ---- IpamDriver --------------------------------------------------------------

export interface RequestPoolReq {
  readonly addressSpace?: string;
  readonly pool?: string;
  readonly subPool?: string;
  readonly v6: boolean;
}

export function parseRequestPool(body: unknown): RequestPoolReq {
  const o = asObject(body, 'RequestPool');
  const v6 = o['V6'];
  if (v6 !== undefined && v6 !== null && typeof v6 !== 'boolean') throw bad('V6', 'must be true or false');
  const addressSpace = str(o, 'AddressSpace');
  const pool = str(o, 'Pool');
  const subPool = str(o, 'SubPool');
  return { ...(addressSpace ? { addressSpace } : {}), ...(pool ? { pool } : {}), ...(subPool ? { subPool } : {}), v6: v6 === true };
}

export interface RequestAddressReq {
  readonly poolId: string;
  readonly address?: string;
  readonly gateway: boolean;
}

export function parseRequestAddress(body: unknown): RequestAddressReq {
  const o = asObject(body, 'RequestAddress');
  const options = map(o, 'Options');
  const address = str(o, 'Address');
  return { poolId: required(o, 'PoolID'), ...(address ? { address } : {}), gateway: options[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE };
}

export function parseReleaseAddress(body: unknown): { poolId: string; address: string } {
  const o = asObject(body, 'ReleaseAddress');
  return { poolId: required(o, 'PoolID'), address: required(o, 'Address') };
}

// ---- NetworkDriver -----------------------------------------------------------

export interface IpamData {
  readonly pool: string;
  readonly gateway?: string;
}

export interface CreateNetworkReq {
  readonly networkId: string;
  readonly ipv4: IpamData[];
  readonly ipv6Count: number;
}

function ipamList(o: Obj, field: string): IpamData[] {
  const v = o[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(field, 'must be a list');
  return v.map((d, i) => {
    const e = asObject(d, `${field}[${i}]`);
    const gateway = str(e, 'Gateway');
    return { pool: required(e, 'Pool'), ...(gateway ? { gateway } : {}) };
  });
}

export function parseCreateNetwork(body: unknown): CreateNetworkReq {
  const o = asObject(body, 'CreateNetwork');
  return { networkId: id(o, 'NetworkID'), ipv4: ipamList(o, 'IPv4Data'), ipv6Count: ipamList(o, 'IPv6Data').length };
}

export interface EndpointRef {
  readonly networkId: string;
  readonly endpointId: string;
}

export function parseNetworkId(body: unknown, what: string): string {
  return id(asObject(body, what), 'NetworkID');
}

export function parseEndpointRef(body: unknown, what: string): EndpointRef {
  const o = asObject(body, what);
  return { networkId: parseNetworkId(o, what), endpointId: id(o, 'EndpointID') };
}

export interface CreateEndpointReq extends EndpointRef {
  readonly address?: string;
  readonly addressIPv6?: string;
  readonly mac?: string;
}

export function parseCreateEndpoint(body: unknown): CreateEndpointReq {
  const o = asObject(body, 'CreateEndpoint');
  const iface = map(o, 'Interface');
  const address = str(iface, 'Address');
  const addressIPv6 = str(iface, 'AddressIPv6');
  const mac = str(iface, 'MacAddress');
  return { ...parseEndpointRef(o, 'CreateEndpoint'), ...(address ? { address } : {}), ...(addressIPv6 ? { addressIPv6 } : {}), ...(mac ? { mac: mac.toLowerCase() } : {}) };
}

export function parseJoin(body: unknown): EndpointRef & { sandboxKey: string } {
  const o = asObject(body, 'Join');
  const sandboxKey = required(o, 'SandboxKey');
  if (!sandboxKey.startsWith('/')) throw bad('SandboxKey', `"${sandboxKey.slice(0, 80)}" is not an absolute path`);
  return { ...parseEndpointRef(o, 'Join'), sandboxKey };
}

export interface PortMapping {
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** Container port. */
  readonly port: number;
  readonly hostPort: number;
  /** Empty: every address of the host. */
  readonly hostIP?: string;
}

const PROTOS: Readonly<Record<number, PortMapping['proto']>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;

function port(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw bad(field, `${JSON.stringify(v)} is not a port number`);
  return v;
}

/** `-p` bindings from ProgramExternalConnectivity's options (libnetwork's types.PortBinding). */
export function parsePortMappings(options: Obj): PortMapping[] {
  const list = options[PORTMAP_OPTION];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw bad(PORTMAP_OPTION, 'must be a list');
  if (list.length > 1024) throw bad(PORTMAP_OPTION, `${list.length} bindings; weft accepts at most 1024 per container`);
  const out: PortMapping[] = [];
  list.forEach((b, i) => {
    const f = `${PORTMAP_OPTION}[${i}]`;
    const o = asObject(b, f);
    // dockerd may add an IPv6 twin of a binding; the overlay is IPv4, so that twin has nothing to reach.
    if (str(o, 'HostIP')?.includes(':')) return;
    const proto = PROTOS[o['Proto'] as number];
    if (proto === undefined) throw bad(`${f}.Proto`, `${JSON.stringify(o['Proto'])} is not tcp (6), udp (17) or sctp (132)`);
    const hostPort = port(o['HostPort'], `${f}.HostPort`);
    const end = o['HostPortEnd'] === undefined || o['HostPortEnd'] === null ? hostPort : port(o['HostPortEnd'], `${f}.HostPortEnd`);
    if (hostPort === 0) throw bad(`${f}.HostPort`, 'weft publishes fixed host ports only: give one (-p 8080:80), not -p 80 or -P');
    if (end !== 0 && end !== hostPort) throw bad(`${f}.HostPortEnd`, `a host port range (${hostPort}-${end}) is not supported: publish each port`);
    const hostIP = str(o, 'HostIP');
    if (hostIP !== undefined && hostIP !== '0.0.0.0' && !IPV4.test(hostIP)) throw bad(`${f}.HostIP`, `"${hostIP}" is not an IPv4 address (weft publishes IPv4 only)`);
    out.push({ proto, port: port(o['Port'], `${f}.Port`), hostPort, ...(hostIP && hostIP !== '0.0.0.0' ? { hostIP } : {}) });
  });
  return out;
}
