// The vxlan planner on plain data: leases -> bridge, VTEP, neighbours, FDB
// entries and routes (flannel's layout), which remotes are skipped and why,
// the MTU arithmetic, and the VTEP/bridge MAC derivation.

import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { deriveBridgeMac, deriveVtepMac, normalizeVtepMac } from '../../encap/vxlan/vtep-mac.js';
import { planVxlan, type PlanInput } from '../../encap/vxlan/plan.js';

const config: NetworkConfig = parseNetworkConfig({ Network: '10.42.0.0/16', Backend: { Type: 'vxlan' } });

function lease(subnet: string, publicIP: string, data: Record<string, unknown> = {}, backendType = 'vxlan'): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType, backendData: data }, leaseId: '0', modRevision: 1 };
}

const local = lease('10.42.7.0/24', '198.18.0.11', { VtepMAC: 'aa:bb:cc:00:00:07' });
const underlay = { iface: 'eth0', publicIP: '198.18.0.11', mtu: 1500 };
const input = (remotes: Lease[], over: Partial<PlanInput> = {}): PlanInput => ({ local, remotes, config, underlay, vtepMac: '0a:00:00:00:00:07', ...over });

describe('planVxlan', () => {
  it('plans flannel\'s bridge, VTEP and per-remote neighbour, FDB entry and onlink route', () => {
    const plan = planVxlan(input([lease('10.42.3.0/24', '198.18.0.13', { VtepMAC: '0A:00:00:00:00:03' })]));
    expect(plan.bridge).toEqual({ name: 'weft0', mtu: 1450, mac: deriveBridgeMac('198.18.0.11'), address: '10.42.7.1/24' });
    expect(plan.vtep).toEqual({
      name: 'weft.1',
      vni: 1,
      local: '198.18.0.11',
      port: 8472,
      learning: false,
      dev: 'eth0',
      mtu: 1450,
      mac: '0a:00:00:00:00:07',
      address: '10.42.7.0/32',
    });
    expect(plan.neighbours).toEqual([{ ip: '10.42.3.0', mac: '0a:00:00:00:00:03' }]);
    expect(plan.fdb).toEqual([{ mac: '0a:00:00:00:00:03', dst: '198.18.0.13' }]);
    expect(plan.routes).toEqual([{ dst: '10.42.3.0/24', gateway: '10.42.3.0' }]);
    expect(plan.skipped).toEqual([]);
  });

  it('computes MTUs from the underlay (minus 50) and uses the config\'s VNI and port', () => {
    const plan = planVxlan(input([], { underlay: { ...underlay, mtu: 9000, ifindex: 4 }, config: { ...config, backend: { type: 'vxlan', vni: 4096, port: 4789 } } }));
    expect(plan.bridge.mtu).toBe(8950);
    expect(plan.vtep).toMatchObject({ name: 'weft.4096', vni: 4096, port: 4789, mtu: 8950, devIndex: 4 });
  });

  it('takes the gateway and VTEP address from any subnet length', () => {
    const plan = planVxlan(input([], { local: lease('10.42.8.0/22', '198.18.0.11') }));
    expect(plan.bridge.address).toBe('10.42.8.1/22');
    expect(plan.vtep.address).toBe('10.42.8.0/32');
  });

  it('skips remotes it cannot program, with a reason each, and keeps the good ones', () => {
    const good = lease('10.42.3.0/24', '198.18.0.13', { VtepMAC: '0a:00:00:00:00:03' });
    const plan = planVxlan(
      input([
        lease('10.42.4.0/24', '198.18.0.14', {}, 'udp'),
        lease('10.42.5.0/24', '198.18.0.15', {}),
        lease('10.42.6.0/24', '198.18.0.16', { VtepMAC: 'ff:ff:ff:ff:ff:ff' }),
        lease('10.42.9.0/24', '198.18.0.19', { VtepMAC: '01:00:5e:00:00:01' }),
        lease('10.42.10.0/24', '0.0.0.0', { VtepMAC: '0a:00:00:00:00:0a' }),
        lease('10.42.11.0/24', '198.18.0.11', { VtepMAC: '0a:00:00:00:00:0b' }),
        lease('10.42.12.0/24', 'not-an-ip', { VtepMAC: '0a:00:00:00:00:0c' }),
        lease('10.99.0.0/24', '198.18.0.20', { VtepMAC: '0a:00:00:00:00:0d' }),
        lease('10.42.7.0/24', '198.18.0.21', { VtepMAC: '0a:00:00:00:00:0e' }),
        lease('10.42.13.0/24', '198.18.0.22', { VtepMAC: 42 }),
        good,
        // Same MAC as `good`, later subnet: loses, on every host alike.
        lease('10.42.14.0/24', '198.18.0.23', { VtepMAC: '0a:00:00:00:00:03' }),
      ]),
    );
    expect(plan.routes).toEqual([{ dst: '10.42.3.0/24', gateway: '10.42.3.0' }]);
    const reasons = Object.fromEntries(plan.skipped.map((s) => [s.subnet, s.reason]));
    expect(reasons).toEqual({
      '10.42.4.0/24': expect.stringMatching(/backend type "udp", not vxlan: one network runs one backend/),
      '10.42.5.0/24': expect.stringMatching(/VtepMAC undefined is not a unicast MAC/),
      '10.42.6.0/24': expect.stringMatching(/not a unicast MAC/),
      '10.42.9.0/24': expect.stringMatching(/not a unicast MAC/),
      '10.42.10.0/24': 'PublicIP is 0.0.0.0',
      '10.42.11.0/24': expect.stringMatching(/this host's own/),
      '10.42.12.0/24': expect.stringMatching(/not an IPv4 address/),
      '10.99.0.0/24': expect.stringMatching(/outside the network 10.42.0.0\/16/),
      '10.42.7.0/24': expect.stringMatching(/overlaps this host's subnet/),
      '10.42.13.0/24': expect.stringMatching(/not a unicast MAC/),
      '10.42.14.0/24': expect.stringMatching(/already used by 10.42.3.0\/24/),
    });
  });

  it('resolves overlapping remote subnets the same way whatever the input order', () => {
    const a = lease('10.42.16.0/20', '198.18.0.30', { VtepMAC: '0a:00:00:00:00:30' });
    const b = lease('10.42.17.0/24', '198.18.0.31', { VtepMAC: '0a:00:00:00:00:31' });
    const one = planVxlan(input([a, b]));
    const two = planVxlan(input([b, a]));
    expect(one).toEqual(two);
    expect(one.routes.map((r) => r.dst)).toEqual(['10.42.16.0/20']);
    expect(one.skipped).toEqual([{ subnet: '10.42.17.0/24', reason: 'overlaps remote subnet 10.42.16.0/20' }]);
  });

  it('plans 1000 remotes in order of subnet', () => {
    const remotes = Array.from({ length: 1000 }, (_, i) =>
      lease(`10.${100 + (i >> 8)}.${i & 255}.0/24`, `198.19.${i >> 8}.${i & 255}`, { VtepMAC: deriveVtepMac(`198.19.${i >> 8}.${i & 255}`, 1) }),
    ).reverse();
    const plan = planVxlan(input(remotes, { config: { ...config, network: parseCidr('10.0.0.0/8') } }));
    expect(plan.routes).toHaveLength(1000);
    expect(plan.routes[0]).toEqual({ dst: '10.100.0.0/24', gateway: '10.100.0.0' });
    expect(new Set(plan.fdb.map((f) => f.mac)).size).toBe(1000);
  });
});

describe('VTEP MAC', () => {
  it('is stable, locally administered, unicast, and differs per host and VNI', () => {
    const m = deriveVtepMac('198.18.0.11', 1);
    expect(m).toBe(deriveVtepMac('198.18.0.11', 1));
    expect(m).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const first = parseInt(m.slice(0, 2), 16);
    expect(first & 0x02).toBe(0x02);
    expect(first & 0x01).toBe(0);
    expect(deriveVtepMac('198.18.0.12', 1)).not.toBe(m);
    expect(deriveVtepMac('198.18.0.11', 2)).not.toBe(m);
    expect(deriveBridgeMac('198.18.0.11')).not.toBe(m);
  });

  it('normalizes published MACs and refuses ones that cannot be a VTEP', () => {
    expect(normalizeVtepMac('0A:1b:2C:3d:4E:5f')).toBe('0a:1b:2c:3d:4e:5f');
    for (const bad of ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '0a-00-00-00-00-01', '0a:00:00:00:00', '', null, 7]) {
      expect(normalizeVtepMac(bad)).toBeUndefined();
    }
  });
});
