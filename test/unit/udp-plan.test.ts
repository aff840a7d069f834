// The udp backend's pure parts: the planner (layout, MTU, which remotes are
// refused and why, one network one backend), the kernel diff, the
// per-peer-direction keys, the peer-table wire format and the nonce epoch.

import { describe, expect, it } from 'vitest';
import { parseCidr, parseIp } from '../../ipam/cidr.js';
import { parseNetworkConfig, serializeNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { deriveBridgeMac } from '../../encap/vxlan/vtep-mac.js';
import { RTPROT_WEFT } from '../../encap/netlink/index.js';
import type { RouteInfo } from '../../encap/netlink/index.js';
import { deriveKey } from '../../ipam/keys.js';
import { diffUdp, encodePeerTable, nextEpoch, parseEpoch, peerKeys, planUdp, type UdpActual, type UdpPlanInput } from '../../encap/udp/index.js';

const plain: NetworkConfig = parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp' } });
const sealed: NetworkConfig = parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp', Port: 9000, Encrypt: true } });

function lease(subnet: string, publicIP: string, backendType = 'udp'): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType, backendData: {} }, leaseId: '0', modRevision: 1 };
}
const local = lease('10.43.7.0/24', '198.18.0.11');
const input = (remotes: Lease[], config = plain): UdpPlanInput => ({ local, remotes, config, underlay: { publicIP: '198.18.0.11', mtu: 1500 } });

describe('Backend.Encrypt in the network config', () => {
  it('is read for udp, defaults to false, and survives serialization', () => {
    expect(plain.backend).toEqual({ type: 'udp', vni: 1, port: 8285 });
    expect(sealed.backend).toEqual({ type: 'udp', vni: 1, port: 9000, encrypt: true });
    expect(parseNetworkConfig(serializeNetworkConfig(sealed))).toEqual(sealed);
  });
  it('must be a boolean', () => {
    expect(() => parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp', Encrypt: 'yes' } })).toThrow(/Backend\.Encrypt/);
  });
});

describe('planUdp', () => {
  it('plans weft0, weft-tun, one route for the network and a peer per remote lease', () => {
    const plan = planUdp(input([lease('10.43.3.0/24', '198.18.0.13')]));
    expect(plan.bridge).toEqual({ name: 'weft0', mtu: 1472, mac: deriveBridgeMac('198.18.0.11'), address: '10.43.7.1/24' });
    expect(plan.tun).toEqual({ name: 'weft-tun', mtu: 1472 });
    expect(plan.route).toEqual({ dst: '10.43.0.0/16', src: '10.43.7.1' });
    expect(plan.peers).toEqual([{ subnet: parseCidr('10.43.3.0/24'), publicIP: '198.18.0.13', ip: parseIp('198.18.0.13'), port: 8285 }]);
    expect(plan.skipped).toEqual([]);
  });

  it('takes the seal overhead (33 bytes) off the MTU when sealed, and the config port', () => {
    const plan = planUdp(input([lease('10.43.3.0/24', '198.18.0.13')], sealed));
    expect(plan.tun.mtu).toBe(1500 - 28 - 33);
    expect(plan.bridge.mtu).toBe(1439);
    expect(plan.peers[0]!.port).toBe(9000);
  });

  it('refuses leases of another backend, naming it: one network, one backend', () => {
    const plan = planUdp(input([lease('10.43.3.0/24', '198.18.0.13', 'vxlan'), lease('10.43.4.0/24', '198.18.0.14')]));
    expect(plan.peers.map((p) => p.publicIP)).toEqual(['198.18.0.14']);
    expect(plan.foreignBackends).toBe(1);
    expect(plan.skipped).toEqual([{ subnet: '10.43.3.0/24', reason: expect.stringMatching(/backend type "vxlan", not udp: one network runs one backend/) }]);
  });

  it('skips bad public IPs, our own IP, foreign subnets, overlaps, and a second lease on one public IP', () => {
    const plan = planUdp(
      input([
        lease('10.43.1.0/24', 'nope'),
        lease('10.43.2.0/24', '0.0.0.0'),
        lease('10.43.3.0/24', '198.18.0.11'),
        lease('10.99.0.0/24', '198.18.0.20'),
        lease('10.43.7.0/24', '198.18.0.21'),
        lease('10.43.8.0/24', '198.18.0.22'),
        lease('10.43.8.0/25', '198.18.0.23'),
        lease('10.43.9.0/24', '198.18.0.22'),
      ]),
    );
    expect(plan.peers.map((p) => p.publicIP)).toEqual(['198.18.0.22']);
    expect(plan.skipped.map((s) => s.reason)).toEqual([
      'PublicIP "nope" is not an IPv4 address',
      'PublicIP is 0.0.0.0',
      "PublicIP 198.18.0.11 is this host's own",
      "overlaps this host's subnet 10.43.7.0/24",
      'overlaps remote subnet 10.43.8.0/24',
      'PublicIP 198.18.0.22 is already used by 10.43.8.0/24',
      'outside the network 10.43.0.0/16',
    ]);
  });
});

describe('diffUdp', () => {
  const plan = planUdp(input([lease('10.43.3.0/24', '198.18.0.13')]));
  const route = (over: Partial<RouteInfo> = {}): RouteInfo => ({ dst: '10.43.0.0/16', dev: 9, src: '10.43.7.1', onlink: false, scope: 253, proto: RTPROT_WEFT, table: 254, type: 1, ...over });
  const good: UdpActual = {
    bridge: { index: 5, kind: 'bridge', mtu: 1472, up: true, addresses: ['10.43.7.1/24'] },
    tun: { index: 9, kind: 'tun', mtu: 1472, up: true, addresses: [] },
    routes: [route()],
  };

  it('asks for nothing when the kernel already matches (a restart writes nothing)', () => {
    expect(diffUdp(plan, good)).toEqual([]);
  });

  it('builds everything on an empty host, the route last', () => {
    expect(diffUdp(plan, { tun: { ...good.tun!, up: false, mtu: 1500 }, routes: [] }).map((o) => o.kind)).toEqual([
      'create-bridge',
      'add-address',
      'set-up',
      'set-mtu',
      'set-up',
      'replace-route',
    ]);
  });

  it("removes a vxlan agent's per-host routes left in the network, after adding its own", () => {
    const left = route({ dst: '10.43.3.0/24', dev: 4, gateway: '10.43.3.0', src: undefined, onlink: true });
    const ops = diffUdp(plan, { ...good, routes: [left] });
    expect(ops).toEqual([{ kind: 'replace-route' }, { kind: 'delete-route', route: left }]);
  });

  it('fixes the bridge address and MTU in place, and replaces a device that is not a bridge', () => {
    expect(diffUdp(plan, { ...good, bridge: { ...good.bridge!, mtu: 1450, addresses: ['10.43.9.1/24'] } })).toEqual([
      { kind: 'set-mtu', link: 'bridge', mtu: 1472 },
      { kind: 'add-address', cidr: '10.43.7.1/24' },
      { kind: 'delete-address', cidr: '10.43.9.1/24' },
    ]);
    expect(diffUdp(plan, { ...good, bridge: { ...good.bridge!, kind: 'dummy' } })[0]).toEqual({ kind: 'delete-bridge', reason: 'is a dummy device, not a bridge' });
  });
});

describe('peerKeys', () => {
  const ring = { keys: [{ id: 7, secret: Buffer.alloc(32, 1) }, { id: 0xfffffffe, secret: Buffer.alloc(32, 2) }] };
  it("derives one key per direction: A's sending key is B's receiving key, never its own", () => {
    const a = peerKeys(ring, '198.18.0.11', '198.18.0.12', deriveKey);
    const b = peerKeys(ring, '198.18.0.12', '198.18.0.11', deriveKey);
    expect(a.map((k) => k.id)).toEqual([7, 0xfffffffe]);
    expect(a[0]!.tx.equals(b[0]!.rx)).toBe(true);
    expect(a[0]!.rx.equals(b[0]!.tx)).toBe(true);
    expect(a[0]!.tx.equals(a[0]!.rx)).toBe(false);
    expect(a[0]!.tx.equals(a[1]!.tx)).toBe(false);
    expect(a[0]!.tx).toHaveLength(32);
  });
  it('uses the injected derivation (ipam/keys.ts deriveKey) with a purpose and the direction as context', () => {
    const seen: string[] = [];
    peerKeys({ keys: [ring.keys[0]!] }, '1.1.1.1', '2.2.2.2', (_s, purpose, ctx) => (seen.push(`${purpose}|${ctx}`), Buffer.alloc(32)));
    expect(seen).toEqual(['udp|1.1.1.1>2.2.2.2', 'udp|2.2.2.2>1.1.1.1']);
  });
});

describe('encodePeerTable', () => {
  it('lays out the local subnet, the count, then per peer subnet, prefix, key count, port, IP and keys, little endian', () => {
    const k = { id: 0x01020304, tx: Buffer.alloc(32, 0xaa), rx: Buffer.alloc(32, 0xbb) };
    const b = encodePeerTable(parseCidr('10.43.7.0/24'), [{ subnet: parseIp('10.43.3.0'), len: 24, ip: parseIp('198.18.0.13'), port: 8285, keys: [k] }]);
    expect(b.length).toBe(12 + 12 + 68);
    expect([b.readUInt32LE(0), b[4], b[5], b[6], b[7]]).toEqual([parseIp('10.43.7.0'), 24, 0, 0, 0]);
    expect(b.readUInt32LE(8)).toBe(1);
    const o = 12;
    expect(b.readUInt32LE(o)).toBe(parseIp('10.43.3.0'));
    expect([b[o + 4], b[o + 5], b.readUInt16LE(o + 6)]).toEqual([24, 1, 8285]);
    expect(b.readUInt32LE(o + 8)).toBe(parseIp('198.18.0.13'));
    expect(b.readUInt32LE(o + 12)).toBe(0x01020304);
    expect(b.subarray(o + 16, o + 48).equals(k.tx)).toBe(true);
    expect(b.subarray(o + 48, o + 80).equals(k.rx)).toBe(true);
    expect(encodePeerTable(parseCidr('10.43.7.0/24'), []).readUInt32LE(8)).toBe(0);
  });
});

describe('nonce epoch', () => {
  it('grows on every start, with the clock or past it when the clock went back', () => {
    expect(nextEpoch(undefined, 1_800_000_000.7)).toBe(1_800_000_000);
    expect(nextEpoch(1_800_000_000, 1_800_000_000)).toBe(1_800_000_001);
    expect(nextEpoch(1_900_000_000, 1_800_000_000)).toBe(1_900_000_001);
    expect(() => nextEpoch(0xffffffff, 0)).toThrow(/exhausted/);
  });
  it('reads back what it wrote and ignores garbage', () => {
    expect(parseEpoch('1800000000\n')).toBe(1_800_000_000);
    expect(parseEpoch('x')).toBeUndefined();
    expect(parseEpoch(undefined)).toBeUndefined();
  });
});
