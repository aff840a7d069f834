// CNI_ARGS: `K=V;K=V` pairs a runtime adds per invocation. weft reads the
// Kubernetes pod identity from it (for DNS names and logs), and `IP` and `MAC`
// (podman 4.3 sends --ip and --mac-address that way, as the reference
// host-local and bridge read them). Unknown keys are
// an error unless IgnoreUnknown is set, as with libcni's LoadArgs, because a
// silently ignored argument is a setting the operator believes is in force.

import { unsupportedField } from './errors.js';
import { bareAddress, ipFamily, normalizeMac } from './syntax.js';

export interface PodIdentity {
  name?: string;
  namespace?: string;
  uid?: string;
  infraContainerId?: string;
}

export interface CniArgs {
  ignoreUnknown: boolean;
  pod: PodIdentity;
  /** `IP=`: requested addresses (host-local takes a comma-separated list), without prefix length. */
  ips?: string[];
  /** `MAC=`, lower case. */
  mac?: string;
  /** Keys weft does not know, with their values, in the order given. */
  unknown: [string, string][];
}

const POD_KEYS: Readonly<Record<string, keyof PodIdentity>> = {
  K8S_POD_NAME: 'name',
  K8S_POD_NAMESPACE: 'namespace',
  K8S_POD_UID: 'uid',
  K8S_POD_INFRA_CONTAINER_ID: 'infraContainerId',
};

/**
 * Malformed text (a pair without exactly one `=`, a bad IgnoreUnknown value)
 * comes back as a problem string, so the caller can report it with the other
 * invalid variables (code 4). Empty segments (`A=1;;B=2`, a trailing `;`) are
 * skipped: they carry nothing and some runtimes produce them.
 */
export function parseCniArgs(raw: string): CniArgs | { problem: string } {
  let ignoreUnknown = false;
  const pod: PodIdentity = {};
  const unknown: [string, string][] = [];
  let ips: string[] | undefined;
  let mac: string | undefined;
  for (const segment of raw.split(';')) {
    if (segment === '') continue;
    const parts = segment.split('=');
    const [key, value] = parts;
    if (parts.length !== 2 || key === undefined || value === undefined || key === '') {
      return { problem: `invalid pair ${JSON.stringify(segment)}: expected KEY=VALUE` };
    }
    const podField = POD_KEYS[key];
    if (key === 'IgnoreUnknown') {
      const flag = parseArgBool(value);
      if (flag === undefined) return { problem: `IgnoreUnknown=${value}: expected 1, true, 0 or false` };
      ignoreUnknown = flag;
    } else if (podField !== undefined) {
      if (value !== '') pod[podField] = value;
    } else if (key === 'IP') {
      const asked = value.split(',').map((v) => v.trim());
      const bad = asked.find((v) => ipFamily(bareAddress(v)) === undefined);
      if (bad !== undefined) return { problem: `IP=${value}: ${JSON.stringify(bad)} is not an IP address` };
      ips = asked.map(bareAddress);
    } else if (key === 'MAC') {
      mac = normalizeMac(value);
      if (mac === undefined) return { problem: `MAC=${value}: not a unicast MAC address like c2:11:22:33:44:55` };
    } else unknown.push([key, value]);
  }
  return { ignoreUnknown, pod, unknown, ...(ips !== undefined ? { ips } : {}), ...(mac !== undefined ? { mac } : {}) };
}

/**
 * Code 2 for the first unknown key (the spec wants key and value in the
 * message), unless IgnoreUnknown is on. The other unknown keys are listed in
 * the details so one round of fixes is enough.
 */
export function rejectUnknownArgs(args: CniArgs): void {
  const first = args.unknown[0];
  if (first === undefined || args.ignoreUnknown) return;
  const [key, value] = first;
  const others = args.unknown.length > 1 ? ` (also ${args.unknown.slice(1).map(([k]) => k).join(', ')})` : '';
  throw unsupportedField(
    `CNI_ARGS ${key}`,
    value,
    `weft does not know this argument${others}; add IgnoreUnknown=1 to CNI_ARGS to let it pass`,
  );
}

/** libcni's UnmarshallableBool: "1"/"true" and "0"/"false", any case. */
function parseArgBool(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}
