// Shapes of the agent API's requests and replies, shared by server and client.

export interface AgentStatus {
  readonly ready: boolean;
  /** What readiness still waits for, in words an operator understands. */
  readonly waitingFor: string[];
  readonly publicIP: string;
  readonly iface: string;
  readonly network?: string;
  readonly backend?: string;
  readonly mtu?: number;
  readonly subnet?: string;
  readonly leaseId?: string;
  /** etcd revision of the lease set below. */
  readonly revision: number;
  readonly leases: { subnet: string; publicIP: string; backendType: string }[];
  /** Sections owned by components (gossip, DNS, …), under their names. */
  readonly [section: string]: unknown;
}

// ---- attachments (POST /v1/attach, /v1/detach, /v1/check; GET /v1/attachments)

export interface AttachRequest {
  readonly containerId: string;
  /** Default eth0. */
  readonly ifname?: string;
  /** Path of the container's network namespace; or `pid` (→ /proc/PID/ns/net). */
  readonly netns?: string;
  readonly pid?: number;
  /** A human name (container name), shown by `weft ps`. */
  readonly name?: string;
  /** The CNI network name when a runtime attached through CNI (CNI GC frees only its own). */
  readonly network?: string;
  readonly podNamespace?: string;
  readonly mac?: string;
  /** A specific address of the host subnet ("10.42.7.9"); default: the next free one. */
  readonly ip?: string;
}

export interface AttachmentRoute {
  readonly dst: string;
  readonly gw: string;
}

export interface Attachment {
  readonly containerId: string;
  readonly ifname: string;
  readonly netns: string;
  readonly name?: string;
  readonly network?: string;
  readonly podNamespace?: string;
  /** "10.42.7.2/24" */
  readonly ip: string;
  readonly gateway: string;
  readonly mac: string;
  readonly mtu: number;
  readonly hostIfName: string;
  /** A handoff attachment's container end as created in the host namespace (Docker moves and renames it). */
  readonly handoffIfName?: string;
  readonly routes: readonly AttachmentRoute[];
  readonly dns?: { readonly nameservers: readonly string[] };
  /** ISO time of the attach. */
  readonly createdAt: string;
}

export interface DetachRequest {
  readonly containerId: string;
  readonly ifname?: string;
}

export interface DetachReply {
  readonly containerId: string;
  readonly ifname: string;
  /** The address given back, when one was reserved. */
  readonly released?: string;
}

export interface CheckReply {
  readonly ok: boolean;
  /** What is missing or wrong, in words (empty when ok). */
  readonly missing: string[];
  readonly attachment: Attachment;
}

export interface ListedAttachment extends Attachment {
  /**
   * Its address belongs to a subnet this host no longer holds (lease lost: detach and attach
   * again), or a part of it is gone (see `gone`: the agent's next sweep frees it).
   */
  readonly stale: boolean;
  /** What of it is gone (its network namespace, its host veth), when anything is. */
  readonly gone?: ('netns' | 'veth')[];
}

export interface AttachmentList {
  /** The host subnet now held, if any. */
  readonly subnet?: string;
  readonly attachments: ListedAttachment[];
}
