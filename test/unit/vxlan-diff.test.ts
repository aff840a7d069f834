// The vxlan diff on plain data: nothing to do when the kernel already
// matches (a restart writes nothing), adds ordered neighbour -> FDB -> route
// and removals the reverse, replace instead of delete+add, and a VTEP
// recreated only for attributes a live device cannot change.

import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { type ActualState, type Op, describeOp, diffVxlan, isLinkOp, vtepRecreateReason } from '../../encap/vxlan/diff.js';
import { planVxlan, type VxlanPlan } from '../../encap/vxlan/plan.js';

const config: NetworkConfig = parseNetworkConfig({ Network: '10.42.0.0/16', Backend: { Type: 'vxlan' } });
const lease = (subnet: string, publicIP: string, mac: string): Lease => ({
  subnet: parseCidr(subnet),
  attrs: { publicIP, backendType: 'vxlan', backendData: { VtepMAC: mac } },
  leaseId: '0',
  modRevision: 1,
});
const local = lease('10.42.7.0/24', '198.18.0.11', '0a:00:00:00:00:07');
const r3 = lease('10.42.3.0/24', '198.18.0.13', '0a:00:00:00:00:03');
const r4 = lease('10.42.4.0/24', '198.18.0.14', '0a:00:00:00:00:04');
const UNDERLAY = 2;
const VTEP = 10;
const BRIDGE = 9;

function plan(remotes: Lease[]): VxlanPlan {
  return planVxlan({ local, remotes, config, underlay: { iface: 'eth0', ifindex: UNDERLAY, publicIP: '198.18.0.11', mtu: 1500 }, vtepMac: '0a:00:00:00:00:07' });
}

/** The kernel state that `plan(remotes)` describes, as readActual would return it. */
function matching(p: VxlanPlan): ActualState {
  return {
    bridge: { index: BRIDGE, kind: 'bridge', mtu: p.bridge.mtu, mac: p.bridge.mac, up: true, addresses: [p.bridge.address] },
    vtep: {
      index: VTEP,
      kind: 'vxlan',
      mtu: p.vtep.mtu,
      mac: p.vtep.mac,
      up: true,
      vxlan: { vni: 1, local: '198.18.0.11', port: 8472, learning: false, dev: UNDERLAY, ttl: 0 },
      addresses: [p.vtep.address],
    },
    neighbours: p.neighbours.map((n) => ({ ...n, permanent: true })),
    fdb: p.fdb.map((f) => ({ ...f, permanent: true })),
    routes: p.routes.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: VTEP, onlink: true })),
  };
}

const EMPTY: ActualState = { neighbours: [], fdb: [], routes: [] };
const kinds = (ops: readonly Op[]) => ops.map((o) => o.kind);

describe('diffVxlan', () => {
  it('does nothing when the kernel already matches', () => {
    const p = plan([r3, r4]);
    expect(diffVxlan(p, matching(p))).toEqual([]);
  });

  it('builds everything from empty: links first, then neighbour -> FDB -> route', () => {
    const ops = diffVxlan(plan([r3, r4]), EMPTY);
    expect(kinds(ops)).toEqual([
      'create-bridge',
      'add-address',
      'set-up',
      'create-vtep',
      'add-address',
      'set-up',
      'replace-neigh',
      'replace-neigh',
      'replace-fdb',
      'replace-fdb',
      'replace-route',
      'replace-route',
    ]);
    expect(ops.filter((o) => !isLinkOp(o)).map((o) => describeOp(o, { bridge: 'weft0', vtep: 'weft.1' }))).toEqual([
      'replace neigh 10.42.3.0 lladdr 0a:00:00:00:00:03 dev weft.1',
      'replace neigh 10.42.4.0 lladdr 0a:00:00:00:00:04 dev weft.1',
      'replace fdb 0a:00:00:00:00:03 dst 198.18.0.13 dev weft.1',
      'replace fdb 0a:00:00:00:00:04 dst 198.18.0.14 dev weft.1',
      'replace route 10.42.3.0/24 via 10.42.3.0 dev weft.1 onlink',
      'replace route 10.42.4.0/24 via 10.42.4.0 dev weft.1 onlink',
    ]);
  });

  it('removes a lease that went: route, then FDB, then neighbour', () => {
    const ops = diffVxlan(plan([r3]), matching(plan([r3, r4])));
    expect(ops).toEqual([
      { kind: 'delete-route', dst: '10.42.4.0/24', gateway: '10.42.4.0', dev: VTEP },
      { kind: 'delete-fdb', mac: '0a:00:00:00:00:04', dst: '198.18.0.14' },
      { kind: 'delete-neigh', ip: '10.42.4.0' },
    ]);
  });

  it('puts adds before removals when leases come and go in one pass', () => {
    const ops = diffVxlan(plan([r4]), matching(plan([r3])));
    expect(kinds(ops)).toEqual(['replace-neigh', 'replace-fdb', 'replace-route', 'delete-route', 'delete-fdb', 'delete-neigh']);
  });

  it('re-adds only what is missing (a route deleted by hand)', () => {
    const p = plan([r3, r4]);
    const actual = matching(p);
    expect(diffVxlan(p, { ...actual, routes: actual.routes.slice(0, 1) })).toEqual([{ kind: 'replace-route', dst: '10.42.4.0/24', gateway: '10.42.4.0' }]);
  });

  it('replaces in place a remote whose MAC changed, and drops the old FDB entry last', () => {
    const moved = lease('10.42.3.0/24', '198.18.0.13', '0a:00:00:00:00:33');
    const ops = diffVxlan(plan([moved]), matching(plan([r3])));
    expect(ops).toEqual([
      { kind: 'replace-neigh', ip: '10.42.3.0', mac: '0a:00:00:00:00:33' },
      { kind: 'replace-fdb', mac: '0a:00:00:00:00:33', dst: '198.18.0.13' },
      { kind: 'delete-fdb', mac: '0a:00:00:00:00:03', dst: '198.18.0.13' },
    ]);
  });

  it('replaces an FDB entry whose destination moved and drops extra destinations of that MAC', () => {
    const p = plan([r3]);
    const actual = matching(p);
    const fdb = [
      { mac: '0a:00:00:00:00:03', dst: '198.18.0.99', permanent: true },
      { mac: '0a:00:00:00:00:03', dst: '198.18.0.98', permanent: true },
    ];
    expect(diffVxlan(p, { ...actual, fdb })).toEqual([
      { kind: 'replace-fdb', mac: '0a:00:00:00:00:03', dst: '198.18.0.13' },
      { kind: 'delete-fdb', mac: '0a:00:00:00:00:03', dst: '198.18.0.99' },
      { kind: 'delete-fdb', mac: '0a:00:00:00:00:03', dst: '198.18.0.98' },
    ]);
  });

  it('makes a stale (non-permanent) neighbour permanent and leaves the kernel\'s own entries alone', () => {
    const p = plan([r3]);
    const actual = matching(p);
    const neighbours = [
      { ip: '10.42.3.0', mac: '0a:00:00:00:00:03', permanent: false },
      { ip: '10.42.5.0', permanent: false },
    ];
    expect(diffVxlan(p, { ...actual, neighbours })).toEqual([{ kind: 'replace-neigh', ip: '10.42.3.0', mac: '0a:00:00:00:00:03' }]);
  });

  it('replaces a route through the wrong next hop or without onlink, and removes weft routes at another metric', () => {
    const p = plan([r3, r4]);
    const actual = matching(p);
    const routes = [
      { dst: '10.42.3.0/24', gateway: '10.42.3.9', dev: VTEP, onlink: true },
      { dst: '10.42.4.0/24', gateway: '10.42.4.0', dev: VTEP, onlink: false },
      { dst: '10.42.4.0/24', gateway: '10.42.4.0', dev: VTEP, onlink: true, metric: 100 },
    ];
    expect(diffVxlan(p, { ...actual, routes })).toEqual([
      { kind: 'replace-route', dst: '10.42.3.0/24', gateway: '10.42.3.0' },
      { kind: 'replace-route', dst: '10.42.4.0/24', gateway: '10.42.4.0' },
      { kind: 'delete-route', dst: '10.42.4.0/24', gateway: '10.42.4.0', dev: VTEP, metric: 100 },
    ]);
  });

  it('changes MTU and MAC in place, fixes addresses (new first), and brings links up', () => {
    const p = plan([r3]);
    const a = matching(p);
    const actual: ActualState = {
      ...a,
      bridge: { ...a.bridge!, mtu: 1500, up: false, addresses: ['10.42.9.1/24'] },
      vtep: { ...a.vtep!, mtu: 1500, mac: '0a:00:00:00:00:99' },
    };
    expect(diffVxlan(p, actual)).toEqual([
      { kind: 'set-mtu', link: 'bridge', mtu: 1450 },
      { kind: 'add-address', link: 'bridge', cidr: '10.42.7.1/24' },
      { kind: 'delete-address', link: 'bridge', cidr: '10.42.9.1/24' },
      { kind: 'set-up', link: 'bridge' },
      { kind: 'set-mtu', link: 'vtep', mtu: 1450 },
      { kind: 'set-mac', link: 'vtep', mac: '0a:00:00:00:00:07' },
    ]);
  });

  it('never changes an existing bridge\'s MAC (containers cache the gateway\'s)', () => {
    const p = plan([]);
    const a = matching(p);
    expect(diffVxlan(p, { ...a, bridge: { ...a.bridge!, mac: '0a:11:11:11:11:11' } })).toEqual([]);
  });

  it.each([
    ['VNI', { vni: 2 }, /VNI 2 != 1/],
    ['local IP', { local: '198.18.0.99' }, /local 198.18.0.99 != 198.18.0.11/],
    ['port', { port: 4789 }, /dstport 4789 != 8472/],
    ['learning', { learning: true }, /learning true != false/],
    ['underlay dev', { dev: 7 }, /dev if7 != if2/],
  ])('recreates the VTEP when its %s differs, and re-adds everything on it', (_what, change, reason) => {
    const p = plan([r3]);
    const a = matching(p);
    const ops = diffVxlan(p, { ...a, vtep: { ...a.vtep!, vxlan: { ...a.vtep!.vxlan!, ...change } } });
    expect(ops[0]).toMatchObject({ kind: 'delete-link', link: 'vtep', reason: expect.stringMatching(reason) });
    expect(kinds(ops)).toEqual(['delete-link', 'create-vtep', 'add-address', 'set-up', 'replace-neigh', 'replace-fdb', 'replace-route']);
  });

  it('recreates a bridge or VTEP name held by a device of the wrong kind', () => {
    const p = plan([]);
    const a = matching(p);
    expect(kinds(diffVxlan(p, { ...a, bridge: { ...a.bridge!, kind: 'veth' } })).slice(0, 2)).toEqual(['delete-link', 'create-bridge']);
    expect(vtepRecreateReason(p.vtep, { ...a.vtep!, kind: 'bridge' })).toMatch(/not vxlan/);
  });

  it('removes weft routes into the network through some other device, but not routes on a VTEP being recreated', () => {
    const p = plan([r3]);
    const a = matching(p);
    const routes = [...a.routes, { dst: '10.42.5.0/24', dev: 33, onlink: false }];
    expect(diffVxlan(p, { ...a, routes })).toEqual([{ kind: 'delete-route', dst: '10.42.5.0/24', dev: 33 }]);
    const ops = diffVxlan(p, { ...a, routes, vtep: { ...a.vtep!, vxlan: { ...a.vtep!.vxlan!, port: 1 } } });
    expect(ops.filter((o) => o.kind === 'delete-route')).toEqual([{ kind: 'delete-route', dst: '10.42.5.0/24', dev: 33 }]);
  });
});
