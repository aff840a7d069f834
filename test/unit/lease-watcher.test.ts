// LeaseWatcher against the in-memory registry: full sets (never deltas),
// garbage skipped, broken watches re-listed, a silently stuck watch caught by
// the watchdog.

import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { formatCidr, parseCidr } from '../../ipam/cidr.js';
import { encodeLeaseAttrs, leaseKey } from '../../ipam/lease-codec.js';
import { LeaseWatcher } from '../../ipam/lease-watcher.js';
import type { Lease } from '../../ipam/types.js';
import { FakeClock, flush } from './support/fake-clock.js';
import { MemoryRegistry } from './support/memory-registry.js';

const PREFIX = '/weft/network';

function put(registry: MemoryRegistry, subnet: string, ip: string): void {
  registry.putRaw(leaseKey(PREFIX, parseCidr(subnet)), encodeLeaseAttrs({ publicIP: ip, backendType: 'vxlan', backendData: {} }));
}

async function started(registry: MemoryRegistry, clock: FakeClock) {
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void warnings.push(JSON.parse(s).msg as string) });
  const w = new LeaseWatcher({ registry, clock, log, checkIntervalMs: 1000 });
  const sets: Lease[][] = [];
  w.subscribe((leases) => sets.push(leases));
  w.start();
  await w.ready();
  await flush();
  const last = (): string[] => (sets.at(-1) ?? []).map((l) => formatCidr(l.subnet)).sort();
  return { w, sets, last, warnings };
}

describe('LeaseWatcher', () => {
  it('delivers the whole set on start and after every change', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    put(registry, '10.42.1.0/24', '198.18.0.11');
    const { w, last } = await started(registry, clock);
    expect(last()).toEqual(['10.42.1.0/24']);
    put(registry, '10.42.2.0/24', '198.18.0.12');
    await flush();
    expect(last()).toEqual(['10.42.1.0/24', '10.42.2.0/24']);
    registry.deleteRaw(leaseKey(PREFIX, parseCidr('10.42.1.0/24')));
    await flush();
    expect(last()).toEqual(['10.42.2.0/24']);
    await w.stop();
  });

  it('skips a garbage value with a warning naming the key and keeps the other leases', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    put(registry, '10.42.1.0/24', '198.18.0.11');
    registry.putRaw(`${PREFIX}/subnets/10.42.9.0-24`, '{not json');
    const { w, last, warnings } = await started(registry, clock);
    expect(last()).toEqual(['10.42.1.0/24']);
    expect(warnings.some((m) => m.includes('does not parse'))).toBe(true);
    registry.putRaw(`${PREFIX}/subnets/garbage-key`, '{}');
    put(registry, '10.42.3.0/24', '198.18.0.13');
    await flush();
    expect(last()).toEqual(['10.42.1.0/24', '10.42.3.0/24']);
    await w.stop();
  });

  it('coalesces a burst of events into few notifications, each a full set', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    const { w, sets, last } = await started(registry, clock);
    const before = sets.length;
    for (let i = 1; i <= 200; i++) put(registry, `10.42.${i}.0/24`, `198.18.1.${i}`);
    await flush();
    expect(last()).toHaveLength(200);
    expect(sets.length - before).toBeLessThan(5);
    await w.stop();
  });

  it('re-lists and re-watches when the watch breaks (compaction, etcd restart)', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    const { w, last } = await started(registry, clock);
    registry.breakWatches();
    // A change nobody watched: only the fresh list can show it.
    put(registry, '10.42.5.0/24', '198.18.0.15');
    await flush();
    expect(last()).toEqual(['10.42.5.0/24']);
    expect(registry.watchCount).toBe(1);
    await w.stop();
  });

  it('a broken watch whose close never answers still leads to exactly one relist', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    const { w, last } = await started(registry, clock);
    registry.hangingClose = true;
    registry.listCalls = 0;
    registry.breakWatches();
    put(registry, '10.42.5.0/24', '198.18.0.15');
    await flush();
    await clock.advance(2000);
    expect(last()).toEqual(['10.42.5.0/24']);
    expect(registry.listCalls).toBe(1);
    expect(registry.watchCount).toBe(1);
    await clock.advance(60_000);
    expect(registry.listCalls).toBe(1);
    registry.hangingClose = false;
    await w.stop();
  });

  it('keeps retrying the list while etcd is away', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    put(registry, '10.42.1.0/24', '198.18.0.11');
    registry.failNext = 3;
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void warnings.push(s) });
    const w = new LeaseWatcher({ registry, clock, log, checkIntervalMs: 1000 });
    let got: Lease[] | undefined;
    w.subscribe((l) => (got = l));
    w.start();
    await clock.advance(30_000);
    await w.ready();
    await flush();
    expect(got?.map((l) => formatCidr(l.subnet))).toEqual(['10.42.1.0/24']);
    expect(warnings.length).toBeGreaterThanOrEqual(3);
    await w.stop();
  });

  it('the watchdog re-creates a watch that silently stopped delivering', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    const { w, last, warnings } = await started(registry, clock);
    registry.freezeWatches();
    put(registry, '10.42.7.0/24', '198.18.0.17');
    await flush();
    expect(last()).toEqual([]); // the stuck watch hid it
    await clock.advance(2500); // two checks disagree → re-list
    expect(last()).toEqual(['10.42.7.0/24']);
    expect(warnings.some((m) => m.includes('went quiet'))).toBe(true);
    // And the new watch delivers again.
    put(registry, '10.42.8.0/24', '198.18.0.18');
    await flush();
    expect(last()).toEqual(['10.42.7.0/24', '10.42.8.0/24']);
    await w.stop();
  });

  it('the watchdog leaves a healthy watch alone', async () => {
    const clock = new FakeClock();
    const registry = new MemoryRegistry(PREFIX, clock);
    const { w, warnings } = await started(registry, clock);
    for (let i = 1; i <= 5; i++) {
      put(registry, `10.42.${i}.0/24`, `198.18.1.${i}`);
      await clock.advance(1000);
    }
    expect(warnings.filter((m) => m.includes('went quiet'))).toEqual([]);
    await w.stop();
  });
});
