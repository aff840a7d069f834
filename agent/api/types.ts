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
}
