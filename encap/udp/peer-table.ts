// The wire format between encap/udp (TypeScript, control) and the native
// forwarder (native/src/udp_forwarder.c, data path): the whole peer table in
// one buffer, pushed on every change, so the C side never parses text or
// calls back into JavaScript. Pure, and the layout is pinned by a unit test
// (little endian):
//   u32 this host's subnet, u8 its prefix length, 3 zero bytes (received
//   packets must be addressed inside it), u32 count, then per peer
//   u32 subnet, u8 prefix length, u8 key count, u16 port, u32 public IP,
//   key count × (u32 key id, 32-byte send key, 32-byte receive key)

import type { PeerKey } from './keys.js';

export interface PeerEntry {
  /** Network address, unsigned 32-bit. */
  readonly subnet: number;
  readonly len: number;
  /** The peer's public IP, unsigned 32-bit. */
  readonly ip: number;
  readonly port: number;
  /** Empty in plain mode; the first one seals. */
  readonly keys: readonly PeerKey[];
}

const KEY_BYTES = 4 + 32 + 32;

export function encodePeerTable(local: { readonly addr: number; readonly len: number }, peers: readonly PeerEntry[]): Buffer {
  const size = 12 + peers.reduce((n, p) => n + 12 + p.keys.length * KEY_BYTES, 0);
  const b = Buffer.alloc(size);
  b.writeUInt32LE(local.addr >>> 0, 0);
  b.writeUInt8(local.len, 4);
  b.writeUInt32LE(peers.length, 8);
  let off = 12;
  for (const p of peers) {
    b.writeUInt32LE(p.subnet >>> 0, off);
    b.writeUInt8(p.len, off + 4);
    b.writeUInt8(p.keys.length, off + 5);
    b.writeUInt16LE(p.port, off + 6);
    b.writeUInt32LE(p.ip >>> 0, off + 8);
    off += 12;
    for (const k of p.keys) {
      if (k.tx.length !== 32 || k.rx.length !== 32) throw new RangeError('peer keys must be 32 bytes');
      b.writeUInt32LE(k.id >>> 0, off);
      k.tx.copy(b, off + 4);
      k.rx.copy(b, off + 36);
      off += KEY_BYTES;
    }
  }
  return b;
}
