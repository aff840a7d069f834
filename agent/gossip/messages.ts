// The gossip protocol's messages as plain data. The state machine (swim.ts)
// speaks only these; codec.ts turns them into bytes for the real socket, and
// the simulation hands them over as objects, so both drive the same logic.

import type { MemberId, MemberState } from './types.js';

export interface Endpoint { addr: string; port: number }

export type Msg =
  /** Direct probe: `target` must be the receiver (a reused address never acks for someone else). */
  | { t: 'ping'; seq: number; target: MemberId; srcAddr: string; srcPort: number }
  /** Ask the receiver to probe `target` for us and relay the ack. */
  | { t: 'ping-req'; seq: number; target: MemberId; targetAddr: string; targetPort: number; srcAddr: string; srcPort: number }
  | { t: 'ack'; seq: number }
  | { t: 'alive'; id: MemberId; addr: string; port: number; inc: number }
  | { t: 'suspect'; id: MemberId; inc: number; from: MemberId }
  /** `from === id` means the member left on purpose. */
  | { t: 'dead'; id: MemberId; inc: number; from: MemberId }
  /** A delegate's broadcast; (origin, seq) names it so receivers re-gossip it once. */
  | { t: 'user'; origin: MemberId; seq: number; data: Uint8Array };

/** One datagram: its sender and one or more messages (the first is the primary, the rest piggyback). */
export interface Packet { from: MemberId; msgs: Msg[] }

export interface PushPullMember { id: MemberId; addr: string; port: number; state: MemberState; inc: number }

/** Full state exchanged over TCP: the member table and the delegate's opaque state. */
export interface PushPullState { from: MemberId; join: boolean; members: PushPullMember[]; user: Uint8Array }
