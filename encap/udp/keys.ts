// Per-peer-direction keys of the sealed udp backend, derived from the
// cluster keyring: one key for what this host sends to a peer and another for
// what it receives from it, so the two directions never share a (key, nonce)
// space and a datagram reflected back to its sender never opens. Pure: the
// keyring comes from the agent's key source (--key-file or the cluster key in
// etcd), the derivation function is injected (ipam/keys.ts deriveKey, i.e.
// HKDF-SHA256); hkdfKey below is the same construction for callers without it.

import { hkdfSync } from 'node:crypto';

export interface KeyringKey {
  /** u32, carried in every sealed datagram so the receiver picks the key without trying all. */
  readonly id: number;
  /** 32 bytes. */
  readonly secret: Buffer;
}

/** keys[0] seals, every key opens: rotation without a flag day. */
export interface Keyring {
  readonly keys: readonly KeyringKey[];
}

export type DeriveKey = (secret: Buffer, purpose: string, context?: string) => Buffer;

/** HKDF-SHA256(secret, no salt, info = purpose NUL context) -> 32 bytes. */
export const hkdfKey: DeriveKey = (secret, purpose, context = '') =>
  Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), Buffer.from(`${purpose}\0${context}`), 32));

export const SEAL_PURPOSE = 'weft udp seal v1';

/** The addon keeps at most this many keys per peer (MAX_KEYS in udp_forwarder.c). */
export const MAX_KEYS = 8;

export interface PeerKey {
  readonly id: number;
  /** Seals datagrams local -> peer. */
  readonly tx: Buffer;
  /** Opens datagrams peer -> local. */
  readonly rx: Buffer;
}

/** The keys for one peer, the sealing key first; at most MAX_KEYS (the newest ones: a ring lists them first). */
export function peerKeys(ring: Keyring, localIp: string, peerIp: string, derive: DeriveKey): PeerKey[] {
  return ring.keys.slice(0, MAX_KEYS).map((k) => ({
    id: k.id >>> 0,
    tx: derive(k.secret, SEAL_PURPOSE, `${localIp}>${peerIp}`),
    rx: derive(k.secret, SEAL_PURPOSE, `${peerIp}>${localIp}`),
  }));
}
