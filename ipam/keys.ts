// The network's shared secrets, as pure functions: parsing a key file,
// naming a key without revealing it, and deriving purpose-specific keys.
// One module for every user of keys (gossip authentication, the sealed udp
// backend), so there is exactly one place that decides how a key is read and
// how a working key is derived from it.
//
// A key file holds base64 keys of 32 bytes, one per line (blank lines and
// `#` comments allowed). The first key seals; every key opens. Rotation is
// three steps with no flag day: add the new key as line 2 on every host
// (everyone still seals with the old one and opens both), promote it to line
// 1 everywhere (hosts seal with the new one; the others still open it), then
// drop the old line. Working keys are derived with HKDF-SHA256 from a secret,
// a purpose ("gossip", "udp") and a context (a peer direction), so a key used
// for one purpose is never used for another.

import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { WeftError } from './errors.js';

export const KEY_BYTES = 32;

export interface Key {
  /** A public name of the key (u32 from a hash of it): sent with sealed data so the receiver picks the right one. */
  readonly id: number;
  readonly secret: Buffer;
}

/** keys[0] seals; every key opens. Never empty. */
export interface Keyring {
  readonly keys: readonly Key[];
}

export function keyId(secret: Buffer): number {
  return createHash('sha256').update('weft key id\0').update(secret).digest().readUInt32BE(0);
}

export function keyFromSecret(secret: Buffer): Key {
  if (secret.length !== KEY_BYTES) throw new WeftError('INVALID_ARGUMENT', `a weft key has ${KEY_BYTES} bytes, not ${secret.length}`);
  return { id: keyId(secret), secret };
}

/** Decodes one base64 key; undefined when it is not base64 of exactly 32 bytes. */
export function decodeKey(text: string): Buffer | undefined {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) return undefined;
  const b = Buffer.from(t, 'base64');
  return b.length === KEY_BYTES && b.toString('base64') === t ? b : undefined;
}

/** Parses a key file's text; `source` names it in errors (never the key itself). */
export function parseKeyFile(text: string, source = 'the key file'): Keyring {
  const keys: Key[] = [];
  const seen = new Set<number>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const secret = decodeKey(line);
    if (secret === undefined) {
      throw new WeftError('INVALID_ARGUMENT', `${source}, line ${i + 1}: not a base64 key of ${KEY_BYTES} bytes; make one with \`weft keygen\``, { line: i + 1 });
    }
    const key = keyFromSecret(secret);
    if (!seen.has(key.id)) keys.push(key);
    seen.add(key.id);
  });
  if (keys.length === 0) throw new WeftError('INVALID_ARGUMENT', `${source} holds no key; put one per line, made with \`weft keygen\``);
  return { keys };
}

/** A fresh random key, base64, as `weft keygen` prints it. */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** A 32-byte working key for one purpose (and context, e.g. "10.0.0.1>10.0.0.2"), never the secret itself. */
export function deriveKey(secret: Buffer, purpose: string, context = ''): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'weft-v1', `weft/${purpose}/${context}`, KEY_BYTES));
}

/** Key IDs as hex, for logs and status: the keys stay secret. */
export function describeKeyring(ring: Keyring): string[] {
  return ring.keys.map((k) => k.id.toString(16).padStart(8, '0'));
}

export function sameKeyring(a: Keyring, b: Keyring): boolean {
  return a.keys.length === b.keys.length && a.keys.every((k, i) => k.id === b.keys[i]!.id && k.secret.equals(b.keys[i]!.secret));
}
