// Wire format of gossip datagrams and push-pull states (before sealing).
// Hand-written and strict because every byte comes from the network: lengths
// are bounded, strings must look like addresses, every field is checked, and
// anything else throws GossipDecodeError (the transport drops and counts it).
//
//   packet  = u8 version(1) · str from · u8 count · msg*count
//   msg     = u8 type · fields (u32 big-endian numbers, u16 ports, str = u8 len + ASCII)
//   state   = u8 version(1) · str from · u8 join · u32 n · member*n · u32 len · bytes

import type { Msg, Packet, PushPullMember, PushPullState } from './messages.js';
import type { MemberState } from './types.js';

export class GossipDecodeError extends Error {
  override readonly name = 'GossipDecodeError';
}

const VERSION = 1;
const TYPES = ['ping', 'ping-req', 'ack', 'alive', 'suspect', 'dead', 'user'] as const;
const STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];
/** Member ids and addresses are IP literals; this also keeps logs free of junk. */
const ADDR_RE = /^[0-9A-Fa-f:.]{2,45}$/;
export const MAX_USER_BYTES = 4096;
export const MAX_STATE_MEMBERS = 100_000;

function strSize(s: string): number { return 1 + s.length; }

/** Bytes `msg` takes in a packet; the broadcast queue packs datagrams with it. */
export function msgSize(m: Msg): number {
  switch (m.t) {
    case 'ping': return 1 + 4 + strSize(m.target) + strSize(m.srcAddr) + 2;
    case 'ping-req': return 1 + 4 + strSize(m.target) + strSize(m.targetAddr) + 2 + strSize(m.srcAddr) + 2;
    case 'ack': return 1 + 4;
    case 'alive': return 1 + strSize(m.id) + strSize(m.addr) + 2 + 4;
    case 'suspect':
    case 'dead': return 1 + strSize(m.id) + 4 + strSize(m.from);
    case 'user': return 1 + strSize(m.origin) + 4 + 2 + m.data.length;
  }
}

/** Bytes of a packet's header (version, sender, count). */
export function packetOverhead(from: string): number { return 1 + strSize(from) + 1; }

class Writer {
  private buf: Buffer;
  private off = 0;
  constructor(size: number) { this.buf = Buffer.alloc(size); }
  private grow(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  u8(v: number): void { this.grow(1); this.buf.writeUInt8(v, this.off); this.off += 1; }
  u16(v: number): void { this.grow(2); this.buf.writeUInt16BE(v, this.off); this.off += 2; }
  u32(v: number): void { this.grow(4); this.buf.writeUInt32BE(v >>> 0, this.off); this.off += 4; }
  str(s: string): void {
    if (!ADDR_RE.test(s)) throw new GossipDecodeError(`not an address: ${JSON.stringify(s.slice(0, 50))}`);
    this.u8(s.length); this.grow(s.length); this.buf.write(s, this.off, 'latin1'); this.off += s.length;
  }
  bytes(b: Uint8Array): void { this.grow(b.length); this.buf.set(b, this.off); this.off += b.length; }
  done(): Buffer { return this.buf.subarray(0, this.off); }
}

class Reader {
  private off = 0;
  constructor(private readonly buf: Uint8Array) {}
  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new GossipDecodeError(`truncated at byte ${this.off}`);
  }
  u8(): number { this.need(1); return this.buf[this.off++]!; }
  u16(): number { this.need(2); const v = (this.buf[this.off]! << 8) | this.buf[this.off + 1]!; this.off += 2; return v; }
  u32(): number {
    this.need(4);
    const b = this.buf, o = this.off;
    this.off += 4;
    return ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!;
  }
  str(): string {
    const n = this.u8();
    this.need(n);
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.off, n).toString('latin1');
    this.off += n;
    if (!ADDR_RE.test(s)) throw new GossipDecodeError('malformed address field');
    return s;
  }
  port(): number { const p = this.u16(); if (p === 0) throw new GossipDecodeError('port 0'); return p; }
  bytes(n: number): Uint8Array { this.need(n); const b = new Uint8Array(n); b.set(this.buf.subarray(this.off, this.off + n)); this.off += n; return b; }
  end(): void { if (this.off !== this.buf.length) throw new GossipDecodeError(`${this.buf.length - this.off} trailing bytes`); }
}

function writeMsg(w: Writer, m: Msg): void {
  w.u8(TYPES.indexOf(m.t));
  switch (m.t) {
    case 'ping': w.u32(m.seq); w.str(m.target); w.str(m.srcAddr); w.u16(m.srcPort); break;
    case 'ping-req': w.u32(m.seq); w.str(m.target); w.str(m.targetAddr); w.u16(m.targetPort); w.str(m.srcAddr); w.u16(m.srcPort); break;
    case 'ack': w.u32(m.seq); break;
    case 'alive': w.str(m.id); w.str(m.addr); w.u16(m.port); w.u32(m.inc); break;
    case 'suspect':
    case 'dead': w.str(m.id); w.u32(m.inc); w.str(m.from); break;
    case 'user':
      if (m.data.length > MAX_USER_BYTES) throw new GossipDecodeError(`user message of ${m.data.length} bytes (max ${MAX_USER_BYTES})`);
      w.str(m.origin); w.u32(m.seq); w.u16(m.data.length); w.bytes(m.data); break;
  }
}

function readMsg(r: Reader): Msg {
  const t = TYPES[r.u8()];
  switch (t) {
    case 'ping': return { t, seq: r.u32(), target: r.str(), srcAddr: r.str(), srcPort: r.port() };
    case 'ping-req': return { t, seq: r.u32(), target: r.str(), targetAddr: r.str(), targetPort: r.port(), srcAddr: r.str(), srcPort: r.port() };
    case 'ack': return { t, seq: r.u32() };
    case 'alive': return { t, id: r.str(), addr: r.str(), port: r.port(), inc: r.u32() };
    case 'suspect':
    case 'dead': return { t, id: r.str(), inc: r.u32(), from: r.str() };
    case 'user': {
      const origin = r.str(), seq = r.u32(), n = r.u16();
      if (n > MAX_USER_BYTES) throw new GossipDecodeError(`user message of ${n} bytes`);
      return { t, origin, seq, data: r.bytes(n) };
    }
    default: throw new GossipDecodeError('unknown message type');
  }
}

export function encodePacket(p: Packet): Buffer {
  if (p.msgs.length === 0 || p.msgs.length > 255) throw new GossipDecodeError(`packet of ${p.msgs.length} messages`);
  const w = new Writer(256);
  w.u8(VERSION); w.str(p.from); w.u8(p.msgs.length);
  for (const m of p.msgs) writeMsg(w, m);
  return w.done();
}

export function decodePacket(b: Uint8Array): Packet {
  const r = new Reader(b);
  if (r.u8() !== VERSION) throw new GossipDecodeError('unknown packet version');
  const from = r.str();
  const n = r.u8();
  if (n === 0) throw new GossipDecodeError('empty packet');
  const msgs: Msg[] = [];
  for (let i = 0; i < n; i++) msgs.push(readMsg(r));
  r.end();
  return { from, msgs };
}

export function encodeState(s: PushPullState): Buffer {
  const w = new Writer(1024 + s.user.length);
  w.u8(VERSION); w.str(s.from); w.u8(s.join ? 1 : 0); w.u32(s.members.length);
  for (const m of s.members) { w.str(m.id); w.str(m.addr); w.u16(m.port); w.u8(STATES.indexOf(m.state)); w.u32(m.inc); }
  w.u32(s.user.length); w.bytes(s.user);
  return w.done();
}

export function decodeState(b: Uint8Array): PushPullState {
  const r = new Reader(b);
  if (r.u8() !== VERSION) throw new GossipDecodeError('unknown state version');
  const from = r.str();
  const join = r.u8();
  if (join > 1) throw new GossipDecodeError('bad join flag');
  const n = r.u32();
  if (n > MAX_STATE_MEMBERS) throw new GossipDecodeError(`${n} members`);
  const members: PushPullMember[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.str(), addr = r.str(), port = r.port();
    const state = STATES[r.u8()];
    if (state === undefined) throw new GossipDecodeError('unknown member state');
    members.push({ id, addr, port, state, inc: r.u32() });
  }
  const user = r.bytes(r.u32());
  r.end();
  return { from, join: join === 1, members, user };
}
