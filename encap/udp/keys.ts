// Per-peer-direction keys of the sealed udp backend, derived from the
// network's keyring (ipam/keys.ts: keys[0] seals, every key opens): one key
// for what this host sends to a peer and another for what it receives from
// it, so the two directions never share a (key, nonce) space and a datagram
// reflected back to its sender never opens. Pure; the derivation is
// ipam/keys.ts deriveKey (HKDF-SHA256), injectable for tests.

import { deriveKey, type Keyring } from '../../ipam/keys.js';

export type { Keyring } from '../../ipam/keys.js';
export type DeriveKey = (secret: Buffer, purpose: string, context?: string) => Buffer;

export const SEAL_PURPOSE = 'udp';

/** The addon keeps at most this many keys per peer (MAX_KEYS in udp_forwarder.c). */
export const MAX_KEYS = 8;

export interface PeerKey {
  readonly id: number;
  /** Seals datagrams local -> peer. */
  readonly tx: Buffer;
  /** Opens datagrams peer -> local. */
  readonly rx: Buffer;
}

/** The keys for one peer, the sealing key first; at most MAX_KEYS (a ring lists the newest first). */
export function peerKeys(ring: Keyring, localIp: string, peerIp: string, derive: DeriveKey = deriveKey): PeerKey[] {
  return ring.keys.slice(0, MAX_KEYS).map((k) => ({
    id: k.id >>> 0,
    tx: derive(k.secret, SEAL_PURPOSE, `${localIp}>${peerIp}`),
    rx: derive(k.secret, SEAL_PURPOSE, `${peerIp}>${localIp}`),
  }));
}
