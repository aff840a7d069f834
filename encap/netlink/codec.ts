// Netlink framing: nlmsghdr + fixed family header + TLV attributes, and the
// reverse. Only the generic layer lives here (no rtnetlink semantics), pure
// Buffer in / Buffer out, so it is unit-testable byte for byte without root.

import { NLMSG, NLMSG_ALIGNTO, NLMSG_HDRLEN, NLMSGERR_ATTR, NLM_F } from './constants.js';

/** An attribute: raw bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
}

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header (family header + attributes). */
  payload: Buffer;
}

const align = (n: number): number => (n + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1);

// Attribute type bits 14/15 are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
const NLA_TYPE_MASK = 0x3fff;

export const nla = {
  raw: (type: number, value: Buffer): Attr => ({ type, value }),
  nest: (type: number, value: Attr[]): Attr => ({ type, value }),
  u8: (type: number, n: number): Attr => ({ type, value: Buffer.from([n & 0xff]) }),
  u16: (type: number, n: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return { type, value: b };
  },
  u32: (type: number, n: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return { type, value: b };
  },
  /** NUL-terminated, as the kernel's NLA_STRING/NLA_NUL_STRING expect. */
  str: (type: number, s: string): Attr => ({ type, value: Buffer.from(`${s}\0`, 'utf8') }),
};

function attrLength(a: Attr): number {
  const body = Buffer.isBuffer(a.value) ? a.value.length : a.value.reduce((n, c) => n + align(attrLength(c)), 0);
  return 4 + body;
}

function writeAttrs(attrs: Attr[], out: Buffer, offset: number): number {
  let off = offset;
  for (const a of attrs) {
    const len = attrLength(a);
    out.writeUInt16LE(len, off);
    out.writeUInt16LE(a.type, off + 2);
    if (Buffer.isBuffer(a.value)) a.value.copy(out, off + 4);
    else writeAttrs(a.value, out, off + 4);
    off += align(len);
  }
  return off;
}

export function encodeAttrs(attrs: Attr[]): Buffer {
  const out = Buffer.alloc(attrs.reduce((n, a) => n + align(attrLength(a)), 0));
  writeAttrs(attrs, out, 0);
  return out;
}

export function encodeMessage(m: { type: number; flags: number; seq: number; pid?: number; header: Buffer; attrs?: Attr[] }): Buffer {
  // Attributes are written straight into the message: bulk programming encodes thousands per pass.
  const attrs = m.attrs ?? [];
  const attrsLen = attrs.reduce((n, a) => n + align(attrLength(a)), 0);
  const len = NLMSG_HDRLEN + align(m.header.length) + attrsLen;
  const out = Buffer.alloc(len);
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(m.type, 4);
  out.writeUInt16LE(m.flags, 6);
  out.writeUInt32LE(m.seq >>> 0, 8);
  out.writeUInt32LE(m.pid ?? 0, 12);
  m.header.copy(out, NLMSG_HDRLEN);
  writeAttrs(attrs, out, NLMSG_HDRLEN + align(m.header.length));
  return out;
}

/** Splits one received datagram into messages; a malformed length stops the walk. */
export function decodeMessages(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align(len);
  }
  return out;
}

/** Attributes by type (last one wins, which is how the kernel reads them too). */
export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align(len);
  }
  return out;
}

/** The attributes that follow a fixed-size family header in a message payload. */
export function payloadAttrs(msg: NlMsg, headerLen: number): Map<number, Buffer> {
  return decodeAttrs(msg.payload.subarray(align(headerLen)));
}

export const read = {
  u8: (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined),
  u16be: (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined),
  u32: (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined),
  str: (b: Buffer | undefined): string | undefined => {
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul < 0 ? b.length : nul);
  },
};

export interface NlError {
  /** Positive errno, 0 for a plain ACK. */
  errno: number;
  /** The kernel's extended-ACK text, when it gave one. */
  extack?: string;
}

/**
 * Reads an NLMSG_ERROR (or the error int of a NLMSG_DONE). With NETLINK_CAP_ACK
 * the echoed request is only its header; without, the whole request, whose
 * length is taken from that header. Extended-ACK TLVs follow when ACK_TLVS.
 */
export function decodeError(msg: NlMsg): NlError {
  if (msg.payload.length < 4) return { errno: 0 };
  const errno = 0 - msg.payload.readInt32LE(0); // not unary minus: -0 is no ACK code
  if (msg.type !== NLMSG.ERROR || !(msg.flags & NLM_F.ACK_TLVS)) return { errno };
  let off = 4;
  if (msg.payload.length >= off + NLMSG_HDRLEN) {
    off += msg.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align(msg.payload.readUInt32LE(off));
  }
  const extack = read.str(decodeAttrs(msg.payload.subarray(off)).get(NLMSGERR_ATTR.MSG));
  return extack ? { errno, extack } : { errno };
}
