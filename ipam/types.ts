// Plain-data types of the control plane, shared by ipam/, encap/ and agent/.
// They live here, in the lowest folder that uses them, so that encap/ can plan
// from leases without importing the agent. No behaviour in this file.

/** An IPv4 prefix. `addr` is the network address as an unsigned 32-bit integer. */
export interface Cidr {
  readonly addr: number;
  readonly len: number;
}

export type BackendType = 'vxlan' | 'udp';

export interface BackendConfig {
  readonly type: BackendType;
  /** VXLAN network identifier (vxlan only; flannel's default is 1). */
  readonly vni: number;
  /** UDP destination port of the encapsulation (vxlan default 8472, udp default 8285). */
  readonly port: number;
  /** udp only: seal every datagram with an AEAD (`"Encrypt": true`); absent means false. */
  readonly encrypt?: boolean;
}

/** The network config stored at `<prefix>/config`, validated, defaults filled in. */
export interface NetworkConfig {
  readonly network: Cidr;
  readonly subnetLen: number;
  /** First and last subnet addresses a host may lease (unsigned 32-bit integers). */
  readonly subnetMin: number;
  readonly subnetMax: number;
  readonly backend: BackendConfig;
}

/** The value of a subnet lease key, in weft's own naming (flannel's on the wire). */
export interface LeaseAttrs {
  readonly publicIP: string;
  readonly backendType: string;
  readonly backendData: Readonly<Record<string, unknown>>;
}

/** One host's subnet lease as read from etcd. */
export interface Lease {
  readonly subnet: Cidr;
  readonly attrs: LeaseAttrs;
  /** etcd lease ID the key is bound to, as a decimal string ('0' if none). */
  readonly leaseId: string;
  /** etcd mod revision of the key. */
  readonly modRevision: number;
}
