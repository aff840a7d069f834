// Authenticated encryption of every gossip datagram and push-pull frame
// (AES-256-GCM from node:crypto). Keys are already derived for gossip
// (deriveKey(secret, 'gossip')) by the caller, so this module knows nothing of
// key files or etcd. The first key seals, every key opens: keys rotate without
// a flag day. The header (magic, version, kind, key id) is authenticated as
// associated data, so a datagram cannot be replayed as a TCP frame or vice versa.
//
//   sealed = 'W' · u8 version(1) · u8 kind · u32 keyId · nonce[12] · ciphertext · tag[16]

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface SealKey { id: number; key: Buffer }
export type SealKind = 'packet' | 'stream';

const MAGIC = 0x57;
const VERSION = 1;
const HEADER = 7;
const NONCE = 12;
const TAG = 16;
export const SEAL_OVERHEAD = HEADER + NONCE + TAG;

export type OpenFailure = 'malformed' | 'unknown-key' | 'auth';
export type Opened = { ok: true; plain: Buffer } | { ok: false; why: OpenFailure };

function header(kind: SealKind, keyId: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h[0] = MAGIC; h[1] = VERSION; h[2] = kind === 'packet' ? 1 : 2;
  h.writeUInt32BE(keyId >>> 0, 3);
  return h;
}

export function seal(keys: readonly SealKey[], kind: SealKind, plain: Uint8Array): Buffer {
  const k = keys[0];
  if (k === undefined) throw new Error('gossip: no key to seal with');
  const h = header(kind, k.id);
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', k.key, nonce);
  c.setAAD(h);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([h, nonce, body, c.getAuthTag()]);
}

export function open(keys: readonly SealKey[], kind: SealKind, sealed: Uint8Array): Opened {
  if (sealed.length < SEAL_OVERHEAD) return { ok: false, why: 'malformed' };
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  const h = b.subarray(0, HEADER);
  if (h[0] !== MAGIC || h[1] !== VERSION || h[2] !== (kind === 'packet' ? 1 : 2)) return { ok: false, why: 'malformed' };
  const id = h.readUInt32BE(3);
  const k = keys.find((x) => x.id === id);
  if (k === undefined) return { ok: false, why: 'unknown-key' };
  try {
    const d = createDecipheriv('aes-256-gcm', k.key, b.subarray(HEADER, HEADER + NONCE));
    d.setAAD(h);
    d.setAuthTag(b.subarray(b.length - TAG));
    return { ok: true, plain: Buffer.concat([d.update(b.subarray(HEADER + NONCE, b.length - TAG)), d.final()]) };
  } catch {
    return { ok: false, why: 'auth' };
  }
}
