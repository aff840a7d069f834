// The contract between the gossip layer (agent/gossip) and what it carries (agent/dns).
// Gossip treats messages as opaque bytes; the DNS record store implements the delegate.
// Kept in its own file so both sides code against it before either is finished.

export type MemberId = string;            // the host's public IP: a restarted agent is the same member
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';
export interface MemberInfo { id: MemberId; addr: string; port: number; state: MemberState; incarnation: number; lastContact?: number /* ms epoch */ }

/** What the gossip layer asks of the data it carries (memberlist's Delegate, reduced). */
export interface GossipDelegate {
  /** Full state for push-pull (over TCP); may be large. */
  localState(): Uint8Array;
  /** Merge a peer's full state (idempotent, commutative: a CRDT). */
  mergeRemoteState(state: Uint8Array, from: MemberId): void;
  /** A user message broadcast by a peer, delivered at least once (maybe duplicated, any order). */
  notifyMessage(msg: Uint8Array, from: MemberId): void;
  /** A member's state changed (dead → its records leave answers; alive again → they return). */
  notifyMember(member: MemberInfo): void;
}

export interface Gossip {
  readonly localId: MemberId;
  /** Queue a small message (< ~1 KB) to piggyback on probes, retransmitted ~λ·log(N) times. */
  broadcast(msg: Uint8Array): void;
  members(): MemberInfo[];
  start(): Promise<void>;
  stop(): Promise<void>;
}
