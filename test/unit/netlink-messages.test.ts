// rtnetlink request shaping and reply decoding (encap/netlink/messages.ts):
// the headers and attributes weft sends for each object, and decoding of
// replies shaped the way the kernel sends them.

import { describe, expect, it } from 'vitest';
import { type Attr, decodeAttrs, decodeMessages, encodeAttrs, encodeMessage, nla, read } from '../../encap/netlink/codec.js';
import {
  AF,
  IFLA,
  IFLA_INFO,
  IFLA_VXLAN,
  NDA,
  NTF,
  NUD_PERMANENT,
  RTA,
  RTM,
  RTNH_F_ONLINK,
  RTPROT_WEFT,
  RT_SCOPE,
  VETH_INFO_PEER,
} from '../../encap/netlink/constants.js';
import * as m from '../../encap/netlink/messages.js';

/** Attributes of a request body, as the kernel would parse them. */
const attrsOf = (body: m.Body): Map<number, Buffer> => decodeAttrs(encodeAttrs(body.attrs));

/** A kernel-style reply message around a header and attributes. */
function reply(type: number, header: Buffer, attrs: Attr[]) {
  return decodeMessages(encodeMessage({ type, flags: 0, seq: 1, header, attrs }))[0]!;
}

describe('link requests', () => {
  it('shapes a VXLAN device: learning off, port in network order, underlay by index', () => {
    const body = m.newVxlan({ name: 'weft.1', vni: 1, local: '198.18.0.1', dev: 'x', devIndex: 3, mtu: 1450, mac: '02:00:00:00:00:01' });
    const a = attrsOf(body);
    expect(read.str(a.get(IFLA.IFNAME))).toBe('weft.1');
    expect(read.u32(a.get(IFLA.MTU))).toBe(1450);
    expect(a.get(IFLA.ADDRESS)?.toString('hex')).toBe('020000000001');
    const info = decodeAttrs(a.get(IFLA.LINKINFO)!);
    expect(read.str(info.get(IFLA_INFO.KIND))).toBe('vxlan');
    const data = decodeAttrs(info.get(IFLA_INFO.DATA)!);
    expect(read.u32(data.get(IFLA_VXLAN.ID))).toBe(1);
    expect(read.u32(data.get(IFLA_VXLAN.LINK))).toBe(3);
    expect(data.get(IFLA_VXLAN.LOCAL)?.toString('hex')).toBe('c6120001');
    expect(read.u8(data.get(IFLA_VXLAN.LEARNING))).toBe(0);
    expect(data.get(IFLA_VXLAN.PORT)?.toString('hex')).toBe('2118'); // 8472 big-endian
  });

  it('refuses an IPv6 VXLAN local address rather than sending the wrong attribute', () => {
    expect(() => m.newVxlan({ name: 'v', vni: 1, local: 'fd00::1' })).toThrow(/IPv4 only/);
  });

  it('puts a veth peer (ifinfomsg + its own attributes, netns fd) inside VETH_INFO_PEER', () => {
    const body = m.newVeth({ name: 'veth0', peer: { name: 'eth0', mtu: 1400 }, peerNsFd: 42 });
    const data = decodeAttrs(decodeAttrs(attrsOf(body).get(IFLA.LINKINFO)!).get(IFLA_INFO.DATA)!);
    const peer = data.get(VETH_INFO_PEER)!;
    expect(peer.subarray(0, 16)).toEqual(Buffer.alloc(16));
    const pa = decodeAttrs(peer.subarray(16));
    expect(read.str(pa.get(IFLA.IFNAME))).toBe('eth0');
    expect(read.u32(pa.get(IFLA.MTU))).toBe(1400);
    expect(read.u32(pa.get(IFLA.NET_NS_FD))).toBe(42);
  });

  it('changes only what is asked: up sets flag and change mask, mtu alone leaves flags alone', () => {
    const up = m.setLink(7, { up: true });
    expect(up.header.readInt32LE(4)).toBe(7);
    expect([up.header.readUInt32LE(8), up.header.readUInt32LE(12)]).toEqual([1, 1]);
    const down = m.setLink(7, { up: false });
    expect([down.header.readUInt32LE(8), down.header.readUInt32LE(12)]).toEqual([0, 1]);
    const mtu = m.setLink(7, { mtu: 1400, masterIndex: 0 });
    expect(mtu.header.readUInt32LE(12)).toBe(0);
    expect(read.u32(attrsOf(mtu).get(IFLA.MASTER))).toBe(0);
  });
});

describe('link replies', () => {
  it('decodes a VXLAN link with its info data', () => {
    const hdr = m.ifinfomsg({ index: 5, flags: 0x1043 });
    const msg = reply(RTM.NEWLINK, hdr, [
      nla.str(IFLA.IFNAME, 'weft.1'),
      nla.u32(IFLA.MTU, 1450),
      nla.raw(IFLA.ADDRESS, Buffer.from('0242c6120001', 'hex')),
      nla.u32(IFLA.MASTER, 2),
      nla.nest(IFLA.LINKINFO, [
        nla.str(IFLA_INFO.KIND, 'vxlan'),
        nla.nest(IFLA_INFO.DATA, [
          nla.u32(IFLA_VXLAN.ID, 1),
          nla.u32(IFLA_VXLAN.LINK, 3),
          nla.raw(IFLA_VXLAN.LOCAL, Buffer.from([198, 18, 0, 1])),
          nla.u8(IFLA_VXLAN.LEARNING, 0),
          nla.raw(IFLA_VXLAN.PORT, Buffer.from([0x21, 0x18])),
        ]),
      ]),
    ]);
    expect(m.decodeLink(msg)).toEqual({
      index: 5,
      name: 'weft.1',
      mtu: 1450,
      up: true,
      mac: '02:42:c6:12:00:01',
      masterIndex: 2,
      kind: 'vxlan',
      vxlan: { vni: 1, dev: 3, local: '198.18.0.1', learning: false, port: 8472 },
    });
  });

  it('decodes a plain link without linkinfo', () => {
    const msg = reply(RTM.NEWLINK, m.ifinfomsg({ index: 1 }), [nla.str(IFLA.IFNAME, 'lo'), nla.u32(IFLA.MTU, 65536)]);
    expect(m.decodeLink(msg)).toEqual({ index: 1, name: 'lo', mtu: 65536, up: false });
  });
});

describe('addresses', () => {
  it('sends IFA_LOCAL and IFA_ADDRESS with the prefix length in the header', () => {
    const body = m.address(4, '10.42.1.1/24');
    expect([...body.header]).toEqual([AF.INET, 24, 0, 0, 4, 0, 0, 0]);
    const a = attrsOf(body);
    expect(a.get(1)?.toString('hex')).toBe('0a2a0101');
    expect(a.get(2)?.toString('hex')).toBe('0a2a0101');
  });

  it('decodes a reply', () => {
    const msg = reply(RTM.NEWADDR, m.ifaddrmsg({ family: AF.INET, prefixLen: 24, index: 4 }), [
      nla.raw(1, Buffer.from([10, 42, 1, 1])),
      nla.raw(2, Buffer.from([10, 42, 1, 1])),
      nla.str(3, 'weft0'),
    ]);
    expect(m.decodeAddress(msg)).toEqual({ family: AF.INET, prefixLen: 24, scope: 0, index: 4, address: '10.42.1.1', label: 'weft0' });
  });
});

describe('routes', () => {
  it('shapes an onlink route via a gateway, marked with weft’s protocol, universe scope', () => {
    const body = m.route({ dst: '10.42.3.0/24', gateway: '10.42.3.0', onlink: true }, 9, false);
    const h = body.header;
    expect({ family: h[0], dstLen: h[1], table: h[4], proto: h[5], scope: h[6], type: h[7], flags: h.readUInt32LE(8) }).toEqual({
      family: AF.INET,
      dstLen: 24,
      table: 254,
      proto: RTPROT_WEFT,
      scope: RT_SCOPE.UNIVERSE,
      type: 1,
      flags: RTNH_F_ONLINK,
    });
    const a = attrsOf(body);
    expect(a.get(RTA.DST)?.toString('hex')).toBe('0a2a0300');
    expect(a.get(RTA.GATEWAY)?.toString('hex')).toBe('0a2a0300');
    expect(read.u32(a.get(RTA.OIF))).toBe(9);
    expect(a.has(RTA.TABLE)).toBe(false);
  });

  it('defaults a gateway-less route to link scope, and a delete to "any scope/protocol"', () => {
    expect(m.route({ dst: '10.42.1.0/24' }, 4, false).header[6]).toBe(RT_SCOPE.LINK);
    const del = m.route({ dst: '10.42.3.0/24' }, undefined, true).header;
    expect([del[5], del[6], del[7]]).toEqual([0, RT_SCOPE.NOWHERE, 0]);
    expect(m.route({ dst: '10.42.3.0/24', proto: RTPROT_WEFT }, undefined, true).header[5]).toBe(RTPROT_WEFT);
  });

  it('uses RTA_TABLE for tables above 255', () => {
    const body = m.route({ dst: '10.0.0.0/8', table: 1000 }, 1, false);
    expect(body.header[4]).toBe(0);
    expect(read.u32(attrsOf(body).get(RTA.TABLE))).toBe(1000);
  });

  it('rejects a gateway of the other family', () => {
    expect(() => m.route({ dst: '10.0.0.0/8', gateway: 'fd00::1' }, 1, false)).toThrow(/gateway/);
  });

  it('decodes a reply, the default route included', () => {
    const hdr = m.rtmsg({ family: AF.INET, dstLen: 24, table: 254, protocol: RTPROT_WEFT, type: 1, flags: RTNH_F_ONLINK });
    const msg = reply(RTM.NEWROUTE, hdr, [
      nla.u32(RTA.TABLE, 254),
      nla.raw(RTA.DST, Buffer.from([10, 42, 3, 0])),
      nla.raw(RTA.GATEWAY, Buffer.from([10, 42, 3, 0])),
      nla.u32(RTA.OIF, 9),
    ]);
    expect(m.decodeRoute(msg)).toEqual({
      dst: '10.42.3.0/24',
      gateway: '10.42.3.0',
      dev: 9,
      onlink: true,
      proto: RTPROT_WEFT,
      scope: 0,
      table: 254,
      type: 1,
    });
    const def = reply(RTM.NEWROUTE, m.rtmsg({ family: AF.INET, table: 254, type: 1 }), [nla.raw(RTA.GATEWAY, Buffer.from([198, 18, 0, 1]))]);
    expect(m.decodeRoute(def).dst).toBe('0.0.0.0/0');
  });
});

describe('neighbours and FDB', () => {
  it('makes permanent neighbours', () => {
    const body = m.neighbour(9, '10.42.3.0', '02:42:c6:12:00:02');
    expect(body.header[0]).toBe(AF.INET);
    expect(body.header.readInt32LE(4)).toBe(9);
    expect(body.header.readUInt16LE(8)).toBe(NUD_PERMANENT);
    const a = attrsOf(body);
    expect(a.get(NDA.DST)?.toString('hex')).toBe('0a2a0300');
    expect(a.get(NDA.LLADDR)?.toString('hex')).toBe('0242c6120002');
    expect(attrsOf(m.neighbour(9, '10.42.3.0')).has(NDA.LLADDR)).toBe(false);
  });

  it('makes bridge-family FDB entries in the device’s own table (NTF_SELF)', () => {
    const body = m.fdb(9, '00:00:00:00:00:00', '198.18.0.2');
    expect(body.header[0]).toBe(AF.BRIDGE);
    expect(body.header[10]).toBe(NTF.SELF);
    expect(body.header.readUInt16LE(8)).toBe(NUD_PERMANENT);
    expect(attrsOf(body).get(NDA.DST)?.toString('hex')).toBe('c6120002');
  });

  it('decodes both', () => {
    const n = reply(RTM.NEWNEIGH, m.ndmsg({ family: AF.INET, index: 9, state: NUD_PERMANENT }), [
      nla.raw(NDA.DST, Buffer.from([10, 42, 3, 0])),
      nla.raw(NDA.LLADDR, Buffer.from('0242c6120002', 'hex')),
    ]);
    expect(m.decodeNeighbour(n)).toEqual({ dev: 9, ip: '10.42.3.0', mac: '02:42:c6:12:00:02', state: NUD_PERMANENT, permanent: true, flags: 0 });
    const f = reply(RTM.NEWNEIGH, m.ndmsg({ family: AF.BRIDGE, index: 9, state: NUD_PERMANENT, flags: NTF.SELF }), [
      nla.raw(NDA.LLADDR, Buffer.alloc(6)),
      nla.raw(NDA.DST, Buffer.from([198, 18, 0, 2])),
      nla.u32(NDA.VNI, 1),
      nla.raw(NDA.PORT, Buffer.from([0x21, 0x18])),
    ]);
    expect(m.decodeFdb(f)).toEqual({
      dev: 9,
      mac: '00:00:00:00:00:00',
      dst: '198.18.0.2',
      state: NUD_PERMANENT,
      permanent: true,
      self: true,
      vni: 1,
      port: 8472,
    });
  });
});
