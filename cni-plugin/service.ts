// The contract between the CNI protocol and the agent's attachment service.
// The protocol validates everything first, so the service receives only
// well-formed, typed requests; it answers in InternalResult and fails by
// throwing an error with a string `code` (the agent's WeftError codes), which
// failures.ts turns into CNI codes. Types only.

import type { PodIdentity } from './args.js';
import type { Dns, InternalResult } from './result.js';

/** The key the spec tells stateful plugins to use: (network name, container ID, interface name). */
export interface AttachmentKey {
  networkName: string;
  containerId: string;
  ifname: string;
}

/** Settings from the network config that reach the agent. */
export interface NetworkSettings {
  /** Where the agent keeps per-network state; `runDir` in the config, default /run/weft. */
  runDir: string;
  /** An MTU override; absent means the agent's computed underlay-minus-overhead MTU. */
  mtu?: number;
  /** The config's `args`, untouched: runtimes put per-container data there. */
  args?: Record<string, unknown>;
}

export interface AddRequest extends AttachmentKey, NetworkSettings {
  netns: string;
  pod: PodIdentity;
  /** The MAC the runtime asked for (runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC), lower case. */
  mac?: string;
  /** Where `mac` came from, e.g. "CNI_ARGS MAC": errors about it name this. */
  macField?: string;
  /** The IPv4 address the runtime asked for, without prefix length (requests.ts says from where). */
  ip?: string;
  /** Where `ip` came from, e.g. "runtimeConfig.ips": a refusal (taken, outside the subnet) names it. */
  ipField?: string;
  /** The config's `dns`; the protocol also lays it over the agent's answer. */
  dns?: Dns;
}

export interface DelRequest extends AttachmentKey, NetworkSettings {
  /** Absent when the runtime no longer has the namespace; clean up what can be found. */
  netns?: string;
  pod: PodIdentity;
  prevResult?: InternalResult;
}

export interface CheckRequest extends AttachmentKey, NetworkSettings {
  netns: string;
  pod: PodIdentity;
  /** What the ADD returned (after later plugins); the spec makes CHECK compare against it. */
  prevResult: InternalResult;
}

export interface GcAttachment {
  containerId: string;
  ifname: string;
}

export interface ServiceStatus {
  ready: boolean;
  reason?: string;
  /** Set when existing containers may have lost connectivity too (STATUS code 51, not 50). */
  disruptsExisting?: boolean;
}

export interface AttachmentService {
  add(req: AddRequest): Promise<InternalResult>;
  /** Must resolve when there is nothing to delete; a NOT_FOUND error is also taken as success. */
  del(req: DelRequest): Promise<void>;
  check(req: CheckRequest): Promise<void>;
  /** Free every attachment of `networkName` that is not in `valid`. */
  gc(valid: GcAttachment[], networkName: string, settings: NetworkSettings): Promise<void>;
  status(networkName: string): Promise<ServiceStatus>;
}
