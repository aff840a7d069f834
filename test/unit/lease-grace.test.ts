// The grace-period planner (ipam/lease-grace.ts) on plain data with a fake
// clock, through the vxlan plan and diff, so that "nothing changes in the
// kernel" is checked as the reconciler would see it: zero ops.

import { describe, expect, it } from 'vitest';
import { formatCidr, parseCidr } from '../../ipam/cidr.js';
import { applyGrace, EMPTY_GRACE, type GraceState } from '../../ipam/lease-grace.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease } from '../../ipam/types.js';
import { type ActualState, diffVxlan, type Op } from '../../encap/vxlan/diff.js';
import { planVxlan, type VxlanPlan } from '../../encap/vxlan/plan.js';
import { FakeClock } from './support/fake-clock.js';

const config = parseNetworkConfig({ Network: '10.42.0.0/16', Backend: { Type: 'vxlan' } });
const GRACE = 5000;
const lease = (subnet: string, publicIP: string, mac: string, leaseId = '1'): Lease => ({
  subnet: parseCidr(subnet),
  attrs: { publicIP, backendType: 'vxlan', backendData: { VtepMAC: mac } },
  leaseId,
  modRevision: Number(leaseId),
});
const local = lease('10.42.7.0/24', '198.18.0.11', '0a:00:00:00:00:07');
const r3 = lease('10.42.3.0/24', '198.18.0.13', '0a:00:00:00:00:03');
const r4 = lease('10.42.4.0/24', '198.18.0.14', '0a:00:00:00:00:04');

function plan(remotes: readonly Lease[]): VxlanPlan {
  return planVxlan({ local, remotes, config, underlay: { iface: 'eth0', ifindex: 2, publicIP: local.attrs.publicIP, mtu: 1500 }, vtepMac: '0a:00:00:00:00:07' });
}

/** The kernel as the last applied plan left it. */
function kernelOf(p: VxlanPlan): ActualState {
  return {
    bridge: { index: 9, kind: 'bridge', mtu: p.bridge.mtu, mac: p.bridge.mac, up: true, addresses: [p.bridge.address] },
    vtep: { index: 10, kind: 'vxlan', mtu: p.vtep.mtu, mac: p.vtep.mac, up: true, vxlan: { vni: 1, local: local.attrs.publicIP, port: 8472, learning: false, dev: 2, ttl: 0 }, addresses: [p.vtep.address] },
    neighbours: p.neighbours.map((n) => ({ ...n, permanent: true })),
    fdb: p.fdb.map((f) => ({ ...f, permanent: true })),
    routes: p.routes.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: 10, onlink: true })),
  };
}

/** Drives applyGrace + plan + diff the way the agent does, one watched set at a time. */
class Host {
  state: GraceState = EMPTY_GRACE;
  kernel: ActualState;
  wakeAt: number | undefined;
  constructor(
    readonly clock: FakeClock,
    initial: readonly Lease[],
  ) {
    this.kernel = kernelOf(plan(initial));
    this.state = applyGrace(EMPTY_GRACE, [local, ...initial], clock.now(), GRACE).state;
  }
  /** One reconcile: returns the kernel ops it issues. */
  see(watched: readonly Lease[]): Op[] {
    const step = applyGrace(this.state, [local, ...watched], this.clock.now(), GRACE);
    this.state = step.state;
    this.wakeAt = step.wakeAt;
    const p = plan(step.leases.filter((l) => l !== local));
    const ops = diffVxlan(p, this.kernel);
    this.kernel = kernelOf(p);
    return ops;
  }
  routes(): string[] {
    return this.kernel.routes.map((r) => r.dst).sort();
  }
}

describe('lease grace period', () => {
  it('a lease deleted and re-created by the same host within the grace period: zero kernel ops', async () => {
    const clock = new FakeClock();
    const h = new Host(clock, [r3, r4]);
    expect(h.see([r4])).toEqual([]); // r3's key vanished
    expect(h.wakeAt).toBe(clock.now() + GRACE);
    await clock.advance(600);
    // The owner takes it back: new etcd lease, new mod revision, same host and VtepMAC.
    const again = lease('10.42.3.0/24', '198.18.0.13', '0a:00:00:00:00:03', '99');
    expect(h.see([again, r4])).toEqual([]);
    expect(h.wakeAt).toBeUndefined();
    await clock.advance(GRACE * 2);
    expect(h.see([again, r4])).toEqual([]);
    expect(h.routes()).toEqual(['10.42.3.0/24', '10.42.4.0/24']);
  });

  it('a lease taken over by another host is reprogrammed at once, without waiting', () => {
    const clock = new FakeClock();
    const h = new Host(clock, [r3, r4]);
    expect(h.see([r4])).toEqual([]);
    const other = lease('10.42.3.0/24', '198.18.0.23', '0a:00:00:00:00:23', '5');
    const ops = h.see([other, r4]);
    // The route's next hop is the subnet's own address, so only where it lives changes.
    expect(ops.map((o) => o.kind)).toEqual(['replace-neigh', 'replace-fdb', 'delete-fdb']);
    expect(ops).toContainEqual({ kind: 'replace-neigh', ip: '10.42.3.0', mac: '0a:00:00:00:00:23' });
    expect(ops).toContainEqual({ kind: 'replace-fdb', mac: '0a:00:00:00:00:23', dst: '198.18.0.23' });
    expect(ops).toContainEqual({ kind: 'delete-fdb', mac: '0a:00:00:00:00:03', dst: '198.18.0.13' });
  });

  it('a lease gone for good stays until the grace period is over, then is removed', async () => {
    const clock = new FakeClock();
    const h = new Host(clock, [r3, r4]);
    const gone = clock.now();
    expect(h.see([r4])).toEqual([]);
    await clock.advance(GRACE - 1);
    expect(h.see([r4])).toEqual([]); // another watch event meanwhile: still held, same deadline
    expect(h.wakeAt).toBe(gone + GRACE);
    await clock.advance(1);
    const ops = h.see([r4]);
    expect(ops.map((o) => o.kind)).toEqual(['delete-route', 'delete-fdb', 'delete-neigh']);
    expect(h.routes()).toEqual(['10.42.4.0/24']);
    expect(h.wakeAt).toBeUndefined();
  });

  it('the same host back on another subnet (or its VtepMAC elsewhere) drops the held one at once', () => {
    const clock = new FakeClock();
    const h = new Host(clock, [r3, r4]);
    h.see([r4]);
    h.see([lease('10.42.30.0/24', '198.18.0.13', '0a:00:00:00:00:03', '7'), r4]);
    expect(h.routes()).toEqual(['10.42.30.0/24', '10.42.4.0/24']);
    const h2 = new Host(clock, [r3, r4]);
    h2.see([r4]);
    h2.see([lease('10.42.31.0/24', '198.18.0.99', '0a:00:00:00:00:03', '8'), r4]);
    expect(h2.routes()).toEqual(['10.42.31.0/24', '10.42.4.0/24']);
  });

  it('a held subnet overlapped by a new lease of another length goes at once', () => {
    const state = applyGrace(EMPTY_GRACE, [local, r3], 0, GRACE).state;
    const step = applyGrace(state, [local, lease('10.42.0.0/20', '198.18.0.50', '0a:00:00:00:00:50', '3')], 10, GRACE);
    expect(step.leases.map((l) => formatCidr(l.subnet))).toEqual(['10.42.7.0/24', '10.42.0.0/20']);
  });

  it('grace 0 removes at once', () => {
    const state = applyGrace(EMPTY_GRACE, [local, r3, r4], 0, 0).state;
    const step = applyGrace(state, [local, r4], 0, 0);
    expect(step.leases).toEqual([local, r4]);
    expect(step.wakeAt).toBeUndefined();
  });

  it('several held leases: wakeAt is the earliest deadline, and each goes on its own time', () => {
    let s = applyGrace(EMPTY_GRACE, [local, r3, r4], 0, GRACE).state;
    s = applyGrace(s, [local, r4], 1000, GRACE).state; // r3 gone at 1000
    const a = applyGrace(s, [local], 3000, GRACE); // r4 gone at 3000
    expect(a.wakeAt).toBe(6000);
    const b = applyGrace(a.state, [local], 6000, GRACE);
    expect(b.leases).toEqual([local, r4]);
    expect(b.wakeAt).toBe(8000);
    expect(applyGrace(b.state, [local], 8000, GRACE).leases).toEqual([local]);
  });
});
