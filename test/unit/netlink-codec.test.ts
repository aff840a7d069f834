// The generic netlink framing (encap/netlink/codec.ts): byte-exact encoding,
// splitting of multi-message datagrams, and error/extended-ACK decoding.

import { describe, expect, it } from 'vitest';
import { decodeAttrs, decodeError, decodeMessages, encodeAttrs, encodeMessage, nla, read } from '../../encap/netlink/codec.js';
import { NLMSG, NLM_F, RTM } from '../../encap/netlink/constants.js';
import { ifinfomsg } from '../../encap/netlink/messages.js';

describe('encodeMessage', () => {
  it('frames a GETLINK-by-name request byte for byte', () => {
    const buf = encodeMessage({
      type: RTM.GETLINK,
      flags: NLM_F.REQUEST | NLM_F.ACK,
      seq: 1,
      header: ifinfomsg({}),
      attrs: [nla.str(3, 'lo')],
    });
    expect(buf.toString('hex')).toBe(
      '28000000' + '1200' + '0500' + '01000000' + '00000000' + '00'.repeat(16) + '0700' + '0300' + '6c6f00' + '00',
    );
  });

  it('pads attributes to 4 bytes and nests them', () => {
    const out = encodeAttrs([nla.nest(18, [nla.str(1, 'vxlan'), nla.nest(2, [nla.u32(1, 42), nla.u8(7, 0)])])]);
    expect(out.length % 4).toBe(0);
    const outer = decodeAttrs(out);
    const info = decodeAttrs(outer.get(18)!);
    expect(read.str(info.get(1))).toBe('vxlan');
    const data = decodeAttrs(info.get(2)!);
    expect(read.u32(data.get(1))).toBe(42);
    expect(read.u8(data.get(7))).toBe(0);
  });
});

describe('decodeMessages', () => {
  it('splits a datagram holding several messages and stops at a bad length', () => {
    const a = encodeMessage({ type: 16, flags: NLM_F.MULTI, seq: 7, pid: 9, header: Buffer.alloc(16) });
    const b = encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 7, pid: 9, header: Buffer.alloc(4) });
    const junk = Buffer.from('ff000000', 'hex');
    const msgs = decodeMessages(Buffer.concat([a, b, junk]));
    expect(msgs.map((m) => [m.type, m.seq, m.pid, m.payload.length])).toEqual([
      [16, 7, 9, 16],
      [NLMSG.DONE, 7, 9, 4],
    ]);
  });

  it('ignores a truncated trailing attribute instead of reading past the end', () => {
    const attrs = Buffer.concat([encodeAttrs([nla.u32(4, 1500)]), Buffer.from('0800', 'hex')]);
    expect([...decodeAttrs(attrs).keys()]).toEqual([4]);
  });
});

function errorReply(errno: number, opts: { capped: boolean; extack?: string }): Buffer {
  const req = encodeMessage({ type: RTM.NEWROUTE, flags: 0x605, seq: 3, header: Buffer.alloc(12), attrs: [nla.u32(4, 5)] });
  const echoed = opts.capped ? req.subarray(0, 16) : req;
  const code = Buffer.alloc(4);
  code.writeInt32LE(-errno);
  const tlvs = opts.extack ? encodeAttrs([nla.str(1, opts.extack), nla.u32(2, 28)]) : Buffer.alloc(0);
  let flags = opts.capped ? NLM_F.CAPPED : 0;
  if (opts.extack) flags |= NLM_F.ACK_TLVS;
  return encodeMessage({ type: NLMSG.ERROR, flags, seq: 3, header: Buffer.concat([code, echoed, tlvs]) });
}

describe('decodeError', () => {
  it('reads an ACK as errno 0', () => {
    const [m] = decodeMessages(errorReply(0, { capped: true }));
    expect(decodeError(m!)).toEqual({ errno: 0 });
  });

  it('reads errno and the extended-ACK text from a capped error', () => {
    const [m] = decodeMessages(errorReply(17, { capped: true, extack: 'Nexthop has invalid gateway' }));
    expect(decodeError(m!)).toEqual({ errno: 17, extack: 'Nexthop has invalid gateway' });
  });

  it('skips a whole echoed request when the ACK is not capped', () => {
    const [m] = decodeMessages(errorReply(22, { capped: false, extack: 'VXLAN: bad port' }));
    expect(decodeError(m!)).toEqual({ errno: 22, extack: 'VXLAN: bad port' });
  });

  it('reads the error int of a DONE message', () => {
    const code = Buffer.alloc(4);
    code.writeInt32LE(-16);
    const [m] = decodeMessages(encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 1, header: code }));
    expect(decodeError(m!).errno).toBe(16);
  });
});
