// SubnetManager against the in-memory registry and a fake clock: acquisition
// order, races, etcd outages, lost leases, release.

import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { formatCidr, parseCidr } from '../../ipam/cidr.js';
import { encodeLeaseAttrs, leaseKey } from '../../ipam/lease-codec.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import { SubnetManager, type SubnetManagerOptions } from '../../ipam/subnet-manager.js';
import type { Lease } from '../../ipam/types.js';
import { FakeClock, flush } from './support/fake-clock.js';
import { MemoryRegistry } from './support/memory-registry.js';

const log = pino({ level: 'silent' });
const PREFIX = '/weft/network';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function setup(network = '10.42.0.0/16', autoAdvance = true) {
  const clock = new FakeClock(autoAdvance);
  const registry = new MemoryRegistry(PREFIX, clock);
  const config = parseNetworkConfig({ Network: network });
  const make = (publicIP: string, extra: Partial<SubnetManagerOptions> = {}) =>
    new SubnetManager({
      registry,
      clock,
      log,
      random: seeded(publicIP.split('.').reduce((a, b) => a * 7 + Number(b), 1)),
      config,
      attrs: { publicIP, backendType: 'vxlan', backendData: {} },
      ttlSeconds: 60,
      ...extra,
    });
  return { clock, registry, config, make };
}

describe('SubnetManager', () => {
  it('acquires a subnet inside SubnetMin..SubnetMax and records it in the registry', async () => {
    const { registry, make } = setup();
    const lease = await make('198.18.0.11').acquire();
    expect(lease.subnet.len).toBe(24);
    expect(lease.subnet.addr).toBeGreaterThanOrEqual(parseCidr('10.42.1.0/24').addr);
    const { leases } = await registry.list();
    expect(leases.map((l) => formatCidr(l.subnet))).toEqual([formatCidr(lease.subnet)]);
    expect(leases[0]!.leaseId).toBe(lease.leaseId);
  });

  it('takes back the lease already held under its public IP and revokes the old etcd lease', async () => {
    const { registry, make } = setup();
    const old = make('198.18.0.11');
    const first = await old.acquire();
    old.stop(); // the previous incarnation is gone; its etcd lease lives on
    const again = await make('198.18.0.11').acquire();
    expect(formatCidr(again.subnet)).toBe(formatCidr(first.subnet));
    expect(again.leaseId).not.toBe(first.leaseId);
    expect(registry.storeLeases.has(first.leaseId)).toBe(false);
    expect((await registry.list()).leases).toHaveLength(1);
  });

  it('reuses the previous subnet from the state file when it is free', async () => {
    const { make } = setup();
    const lease = await make('198.18.0.11', { previous: parseCidr('10.42.77.0/24') }).acquire();
    expect(formatCidr(lease.subnet)).toBe('10.42.77.0/24');
  });

  it('chooses another subnet when the previous one is held by another host', async () => {
    const { registry, make } = setup();
    registry.putRaw(leaseKey(PREFIX, parseCidr('10.42.77.0/24')), encodeLeaseAttrs({ publicIP: '198.18.0.99', backendType: 'vxlan', backendData: {} }));
    const lease = await make('198.18.0.11', { previous: parseCidr('10.42.77.0/24') }).acquire();
    expect(formatCidr(lease.subnet)).not.toBe('10.42.77.0/24');
  });

  it('never gives two racing hosts the same subnet, even when they all pick the same one first', async () => {
    const { registry, make } = setup('10.42.0.0/16');
    // Same random sequence for everyone: every host first tries the same subnet.
    const managers = Array.from({ length: 50 }, (_, i) => make(`198.18.1.${i + 1}`, { random: seeded(7) }));
    const leases = await Promise.all(managers.map((m) => m.acquire()));
    const subnets = new Set(leases.map((l) => formatCidr(l.subnet)));
    expect(subnets.size).toBe(50);
    expect((await registry.list()).leases).toHaveLength(50);
  });

  it('retries with backoff while etcd is unreachable, then succeeds', async () => {
    const { registry, clock, make } = setup();
    registry.failNext = 8; // grant and list go out together: two failed calls per attempt
    const lease = await make('198.18.0.11').acquire();
    expect(lease.subnet.len).toBe(24);
    expect(clock.sleeps.length).toBeGreaterThanOrEqual(4);
    expect(clock.sleeps[1]!).toBeGreaterThan(clock.sleeps[0]!);
  });

  it('waits when the network is full and acquires once a subnet frees up', async () => {
    const { registry, clock, make } = setup('10.42.0.0/28', false); // SubnetLen 30: subnets .4, .8, .12
    const a = await make('198.18.0.1').acquire();
    await make('198.18.0.2').acquire();
    await make('198.18.0.3').acquire();
    let got: Lease | undefined;
    void make('198.18.0.4').acquire().then((l) => (got = l));
    await flush();
    expect(got).toBeUndefined();
    await registry.remove(a.subnet, a.leaseId);
    await clock.advance(60_000);
    expect(got && formatCidr(got.subnet)).toBe(formatCidr(a.subnet));
  });

  it('re-acquires the same subnet when the etcd lease is lost, and tells listeners', async () => {
    const { registry, make } = setup();
    const m = make('198.18.0.11');
    const changes: string[] = [];
    m.onChange((l) => changes.push(`${formatCidr(l.subnet)}@${l.leaseId}`));
    const first = await m.acquire();
    registry.loseLease(first.leaseId);
    await flush();
    await flush();
    const now = m.current()!;
    expect(formatCidr(now.subnet)).toBe(formatCidr(first.subnet));
    expect(now.leaseId).not.toBe(first.leaseId);
    expect(changes).toHaveLength(2);
    expect((await registry.list()).leases.map((l) => l.leaseId)).toEqual([now.leaseId]);
  });

  it('takes a new subnet when the lost one was taken by someone else meanwhile', async () => {
    const { registry, make } = setup();
    const m = make('198.18.0.11');
    const first = await m.acquire();
    // Simulate: lease lost, and another host grabbed the subnet before we came back.
    registry.failNext = 1; // the immediate re-acquire attempt fails once
    registry.loseLease(first.leaseId);
    registry.putRaw(leaseKey(PREFIX, first.subnet), encodeLeaseAttrs({ publicIP: '198.18.0.99', backendType: 'vxlan', backendData: {} }));
    await flush();
    await flush();
    expect(formatCidr(m.current()!.subnet)).not.toBe(formatCidr(first.subnet));
  });

  it('stop() keeps the key for the next start; release() deletes it and revokes', async () => {
    const { registry, make } = setup();
    const a = make('198.18.0.11');
    const la = await a.acquire();
    a.stop();
    expect((await registry.list()).leases).toHaveLength(1);
    const b = make('198.18.0.12');
    const lb = await b.acquire();
    await b.release();
    const left = (await registry.list()).leases.map((l) => formatCidr(l.subnet));
    expect(left).toEqual([formatCidr(la.subnet)]);
    expect(registry.storeLeases.has(lb.leaseId)).toBe(false);
  });
});

describe('SubnetManager.verify (the watch as a second loss detector)', () => {
  it('re-acquires when our key vanishes from the watched set, and leaves a matching set alone', async () => {
    const { registry, make } = setup();
    const m = make('198.18.0.11');
    const first = await m.acquire();
    m.verify((await registry.list()).leases);
    expect(m.current()).toBe(first);
    registry.deleteRaw(leaseKey(PREFIX, first.subnet));
    m.verify((await registry.list()).leases);
    await flush();
    await flush();
    const now = m.current()!;
    expect(formatCidr(now.subnet)).toBe(formatCidr(first.subnet));
    expect(now.leaseId).not.toBe(first.leaseId);
    expect(registry.storeLeases.has(first.leaseId)).toBe(false);
  });

  it('re-acquires elsewhere when another host rewrote our key', async () => {
    const { registry, make } = setup();
    const m = make('198.18.0.11');
    const first = await m.acquire();
    registry.putRaw(leaseKey(PREFIX, first.subnet), encodeLeaseAttrs({ publicIP: '198.18.0.99', backendType: 'vxlan', backendData: {} }));
    m.verify((await registry.list()).leases);
    await flush();
    await flush();
    expect(formatCidr(m.current()!.subnet)).not.toBe(formatCidr(first.subnet));
  });
});

describe('SubnetManager choosing from the watched set', () => {
  const other = (subnet: string, publicIP: string, registry: MemoryRegistry): void =>
    registry.putRaw(leaseKey(PREFIX, parseCidr(subnet)), encodeLeaseAttrs({ publicIP, backendType: 'vxlan', backendData: {} }), '7');

  it('takes a free subnet from the set without listing etcd', async () => {
    const { registry, make } = setup();
    other('10.42.9.0/24', '198.18.0.99', registry);
    const known = (await registry.list()).leases;
    registry.listCalls = 0;
    const lease = await make('198.18.0.11', { known: () => known }).acquire();
    expect(registry.listCalls).toBe(0);
    expect(formatCidr(lease.subnet)).not.toBe('10.42.9.0/24');
    expect((await registry.list()).leases).toHaveLength(2);
  });

  it('lists once when there is no set yet', async () => {
    const { registry, make } = setup();
    await make('198.18.0.11', { known: () => undefined }).acquire();
    expect(registry.listCalls).toBe(1);
  });

  it('a stale set: conflicts lose the transaction, are excluded and retried, still without listing', async () => {
    const { registry, make } = setup('10.42.0.0/28'); // SubnetLen 30: .4, .8, .12
    other('10.42.0.4/30', '198.18.0.98', registry);
    other('10.42.0.8/30', '198.18.0.99', registry);
    registry.listCalls = 0;
    const creates: string[] = [];
    const create = registry.create.bind(registry);
    registry.create = async (subnet, attrs, id) => {
      creates.push(formatCidr(subnet));
      return create(subnet, attrs, id);
    };
    // The set knows nothing of the two leases: every pick is a possible race.
    const lease = await make('198.18.0.11', { known: () => [], random: () => 0 }).acquire();
    expect(formatCidr(lease.subnet)).toBe('10.42.0.12/30');
    expect(creates).toEqual(['10.42.0.4/30', '10.42.0.8/30', '10.42.0.12/30']);
    expect(registry.listCalls).toBe(0);
  });

  it('50 hosts racing with one shared, empty set get 50 distinct subnets inside SubnetMin..SubnetMax', async () => {
    const clock = new FakeClock(true);
    const registry = new MemoryRegistry(PREFIX, clock);
    const config = parseNetworkConfig({ Network: '10.42.0.0/16', SubnetMin: '10.42.100.0', SubnetMax: '10.42.163.0' }); // 64 subnets
    const managers = Array.from({ length: 50 }, (_, i) =>
      new SubnetManager({ registry, clock, log, random: seeded(3), config, attrs: { publicIP: `198.18.2.${i + 1}`, backendType: 'vxlan', backendData: {} }, ttlSeconds: 60, known: () => [] }),
    );
    const leases = await Promise.all(managers.map((m) => m.acquire()));
    const subnets = leases.map((l) => l.subnet.addr);
    expect(new Set(subnets).size).toBe(50);
    for (const a of subnets) {
      expect(a).toBeGreaterThanOrEqual(parseCidr('10.42.100.0/24').addr);
      expect(a).toBeLessThanOrEqual(parseCidr('10.42.163.0/24').addr);
    }
    expect(registry.listCalls).toBe(0);
  });

  it('a stale copy of its own lease (old mod revision) is confirmed with a list, not given up', async () => {
    const { registry, make } = setup();
    const old = make('198.18.0.11');
    const first = await old.acquire();
    old.stop();
    const stale: Lease = { ...first, modRevision: first.modRevision - 1 };
    registry.listCalls = 0;
    const again = await make('198.18.0.11', { known: () => [stale] }).acquire();
    expect(formatCidr(again.subnet)).toBe(formatCidr(first.subnet));
    expect(registry.listCalls).toBe(1);
    expect((await registry.list()).leases).toHaveLength(1);
  });

  it('a full network: the set is confirmed by one list, then the wait is logged naming the size and what to change', async () => {
    const clock = new FakeClock(false);
    const registry = new MemoryRegistry(PREFIX, clock);
    const config = parseNetworkConfig({ Network: '10.42.0.0/28' });
    for (const s of ['10.42.0.4/30', '10.42.0.8/30', '10.42.0.12/30']) other(s, '198.18.0.99', registry);
    const lines: string[] = [];
    const logged = pino({ level: 'error' }, { write: (l: string) => void lines.push(l) });
    const known = (await registry.list()).leases;
    registry.listCalls = 0;
    const m = new SubnetManager({ registry, clock, log: logged, random: seeded(1), config, attrs: { publicIP: '198.18.0.11', backendType: 'vxlan', backendData: {} }, ttlSeconds: 60, known: () => known });
    let got: Lease | undefined;
    const acquiring = m.acquire().then((l) => (got = l), () => undefined);
    await flush();
    expect(got).toBeUndefined();
    expect(registry.listCalls).toBe(1);
    expect(lines.join('')).toMatch(/no free subnet left in the network: all 3 subnets of 10\.42\.0\.0\/28 .*SubnetLen 30/);
    m.stop();
    await acquiring;
  });
});
