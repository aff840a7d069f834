// EtcdSubnetRegistry against a real etcd on loopback: the transactions and
// the watchdog's stats mean what the subnet manager and lease watcher assume.
// (The in-memory registry of the unit tests copies these semantics; this is
// where they are checked against etcd itself.)

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { createEtcdClient } from '../../ipam/etcd-client.js';
import { EtcdSubnetRegistry } from '../../ipam/etcd-registry.js';
import type { LeaseEvent } from '../../ipam/subnet-registry.js';
import { assertRoot, pollUntil, startEtcd, type EtcdHandle } from '../lab/index.js';

const attrs = (ip: string) => ({ publicIP: ip, backendType: 'vxlan', backendData: { VtepMAC: '02:00:00:00:00:01' } });

describe('EtcdSubnetRegistry on a real etcd', () => {
  let etcd: EtcdHandle;
  let registry: EtcdSubnetRegistry;
  beforeAll(async () => {
    assertRoot();
    etcd = await startEtcd();
    registry = new EtcdSubnetRegistry(createEtcdClient({ endpoints: [etcd.endpoint] }), '/t/network', [etcd.endpoint]);
  });
  afterAll(async () => {
    registry?.close();
    await etcd?.destroy();
  });

  it('creates a key only if absent, bound to the lease; rebinds only if unchanged; removes only if bound to that lease', async () => {
    const g = await registry.grant(60);
    const s = parseCidr('10.42.1.0/24');
    const rev = await registry.create(s, attrs('198.18.0.11'), g.id);
    expect(rev).toBeGreaterThan(0);
    expect(await registry.create(s, attrs('198.18.0.12'), g.id)).toBeUndefined();
    const [lease] = (await registry.list()).leases;
    expect(lease).toMatchObject({ leaseId: g.id, modRevision: rev, attrs: { publicIP: '198.18.0.11' } });
    const g2 = await registry.grant(60);
    expect(await registry.rebind({ ...lease!, modRevision: rev! - 1 }, attrs('198.18.0.11'), g2.id)).toBeUndefined();
    expect(await registry.rebind(lease!, attrs('198.18.0.11'), g2.id)).toBeGreaterThan(rev!);
    expect(await registry.remove(s, g.id)).toBe(false);
    expect(await registry.remove(s, g2.id)).toBe(true);
    expect((await registry.list()).leases).toEqual([]);
    await g.revoke();
    await g2.revoke();
  });

  it('stats: count of keys and the newest mod revision, so a watchdog can tell a quiet watch from an idle network', async () => {
    const g = await registry.grant(60);
    const revs: number[] = [];
    for (let i = 10; i < 15; i++) revs.push((await registry.create(parseCidr(`10.42.${i}.0/24`), attrs(`198.18.1.${i}`), g.id))!);
    const list = await registry.list();
    const stats = await registry.stats();
    expect(stats.count).toBe(5);
    expect(stats.maxModRevision).toBe(Math.max(...revs));
    expect(stats.maxModRevision).toBeLessThanOrEqual(list.revision);
    // Nothing changes: the numbers stay, whatever else happens in etcd.
    await registry.putConfig('{"Network":"10.42.0.0/16"}');
    expect(await registry.stats()).toMatchObject({ count: 5, maxModRevision: Math.max(...revs) });
    await g.revoke(); // deletes all five keys
    expect(await registry.stats()).toMatchObject({ count: 0, maxModRevision: 0 });
  });

  it('watch delivers puts, garbage as invalid, and deletes from the given revision', async () => {
    const events: LeaseEvent[] = [];
    const { revision } = await registry.list();
    const w = await registry.watch(revision + 1, { onEvents: (e) => events.push(...e), onBroken: () => undefined });
    const g = await registry.grant(60);
    await registry.create(parseCidr('10.42.20.0/24'), attrs('198.18.0.20'), g.id);
    // Garbage, as another etcd client could write it.
    const other = createEtcdClient({ endpoints: [etcd.endpoint] });
    await other.put('/t/network/subnets/10.42.21.0-24').value('garbage');
    other.close();
    await g.revoke();
    await pollUntil(async () => events.length, (n) => n >= 3, 5000, 20);
    expect(events.map((e) => e.type)).toEqual(['put', 'invalid', 'delete']);
    await w.close();
  });
});
