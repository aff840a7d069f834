// Validation of attachment requests, before anything is reserved or made: a
// request that reaches the pool is well-formed. Pure (no I/O), so every rule
// and message is unit-tested; messages name the field, as the API, the CLI and
// the CNI plugin all show them to a person.
//
// Shared with the CLI for the default container ID, so `weft attach --netns X`
// and a later `weft detach --netns X` name the same attachment.

import { createHash } from 'node:crypto';
import { parseIp } from '../../ipam/cidr.js';
import { hasControl, ifnameProblem, normalizeMac } from '../../cni-plugin/syntax.js';
import { WeftError } from '../../ipam/errors.js';
import type { Attachment } from '../api/types.js';

export const DEFAULT_IFNAME = 'eth0';

/** A validated attach request: the record's identifying fields, plus what the caller may ask for. */
export type AttachParams = Pick<Attachment, 'containerId' | 'ifname' | 'netns' | 'name' | 'network' | 'podNamespace'> & {
  readonly mac?: string;
  /** A specific address of the host subnet, as an unsigned 32-bit integer. */
  readonly ip?: number;
  /** Leave the container end in the host namespace for the runtime to move (Docker's Join). */
  readonly handoff?: boolean;
};

export interface AttachmentKey {
  readonly containerId: string;
  readonly ifname: string;
}

// CNI's rule for container IDs (alphanumeric first, then also _ . -), bounded.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$/;

function invalid(field: string, message: string, value?: unknown): WeftError {
  return new WeftError('INVALID_ARGUMENT', `${field}: ${message}`, { field, ...(value === undefined ? {} : { value }) });
}

function optionalString(o: Record<string, unknown>, field: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(field, `must be a string, got ${typeof v}`, v);
  return v;
}

function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new WeftError('INVALID_ARGUMENT', 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

export function netnsOfPid(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

/** Checks containerId and ifname (default eth0): the key of an attachment. */
export function parseKey(o: Record<string, unknown>): AttachmentKey {
  const containerId = optionalString(o, 'containerId');
  if (containerId === undefined || containerId === '') throw invalid('containerId', 'is required');
  if (!CONTAINER_ID.test(containerId)) {
    throw invalid('containerId', `"${containerId}" must be 1-256 letters, digits, _ . - (starting with a letter or digit)`, containerId);
  }
  const ifname = optionalString(o, 'ifname') ?? DEFAULT_IFNAME;
  // The kernel's rules, checked here so a bad name is the caller's 400, never a KERNEL error from netlink.
  const problem = ifnameProblem(ifname);
  if (problem !== undefined) throw invalid('ifname', `${JSON.stringify(ifname)} is not a valid interface name: ${problem}`, ifname);
  return { containerId, ifname };
}

export function parseAttachRequest(body: unknown): AttachParams {
  const o = asObject(body);
  const key = parseKey(o);
  const netnsField = optionalString(o, 'netns');
  const pid = o['pid'];
  if ((netnsField === undefined || netnsField === '') === (pid === undefined || pid === null)) {
    throw invalid('netns', 'give exactly one of netns (a path) or pid');
  }
  let netns: string;
  if (netnsField !== undefined && netnsField !== '') {
    if (!netnsField.startsWith('/')) throw invalid('netns', `"${netnsField}" must be an absolute path (e.g. /run/netns/NAME)`, netnsField);
    if (hasControl(netnsField)) throw invalid('netns', `${JSON.stringify(netnsField)} contains control characters`, netnsField);
    netns = netnsField;
  } else {
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1) throw invalid('pid', `${JSON.stringify(pid)} is not a process ID`, pid);
    netns = netnsOfPid(pid);
  }
  // name becomes a DNS name and a column of `weft ps`: no control characters in either.
  const text = (field: string): string | undefined => {
    const v = optionalString(o, field);
    if (v !== undefined && v.length > 256) throw invalid(field, 'is longer than 256 characters');
    if (v !== undefined && hasControl(v)) throw invalid(field, `${JSON.stringify(v)} contains control characters`, v);
    return v;
  };
  const name = text('name');
  const network = text('network');
  const podNamespace = text('podNamespace');
  const macText = optionalString(o, 'mac');
  const mac = macText === undefined ? undefined : normalizeMac(macText);
  if (macText !== undefined && mac === undefined) {
    throw invalid('mac', `"${macText}" is not a MAC address an interface can have (aa:bb:cc:dd:ee:ff, not multicast, not all-zero)`, macText);
  }
  const ipText = optionalString(o, 'ip');
  let ip: number | undefined;
  if (ipText !== undefined) {
    // A "/len" suffix is accepted when it is harmless: the pool decides the prefix.
    try {
      ip = parseIp(ipText.replace(/\/\d+$/, ''));
    } catch {
      throw invalid('ip', `"${ipText}" is not an IPv4 address`, ipText);
    }
  }
  const handoff = o['handoff'];
  if (handoff !== undefined && typeof handoff !== 'boolean') throw invalid('handoff', `must be true or false, got ${JSON.stringify(handoff)}`, handoff);
  return {
    ...key,
    netns,
    ...(handoff === true ? { handoff } : {}),
    ...(name ? { name } : {}),
    ...(network ? { network } : {}),
    ...(podNamespace ? { podNamespace } : {}),
    ...(mac ? { mac } : {}),
    ...(ip !== undefined ? { ip } : {}),
  };
}

export function parseDetachRequest(body: unknown): AttachmentKey {
  return parseKey(asObject(body));
}

/**
 * The container ID used when none is given: the namespace's name for
 * /run/netns/NAME, `pid-PID` for a pid, else a hash of the path. Deterministic,
 * so attach and detach by the same --netns/--pid agree.
 */
export function defaultContainerId(target: { netns?: string; pid?: number }): string {
  if (target.pid !== undefined) return `pid-${target.pid}`;
  const path = target.netns ?? '';
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(path);
  if (m && CONTAINER_ID.test(m[1]!)) return m[1]!;
  return `netns-${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
}
