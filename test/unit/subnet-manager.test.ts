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
    registry.failNext = 4;
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
