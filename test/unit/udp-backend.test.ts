// The udp backend's control logic with a fake kernel and a fake forwarder:
// what it pushes to the data path (peers, keys), that a key change re-pushes
// without a reconcile pass, that drops are logged at most once per interval,
// and that a sealed network without a key source is refused.

import { mkdtemp, rm } from 'node:fs/promises';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease } from '../../ipam/types.js';
import type { Netlink } from '../../encap/netlink/index.js';
import { createUdpBackend, type DataPathOptions, type PeerEntry, type UdpDataPath, type UdpKeySource } from '../../encap/udp/index.js';

function lease(subnet: string, publicIP: string, backendType = 'udp'): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType, backendData: {} }, leaseId: '0', modRevision: 1 };
}

/** Enough of Netlink for the udp reconciler: links by name, one address list, routes. */
function fakeNetlink(): { nl: Netlink; calls: string[] } {
  const calls: string[] = [];
  const links = new Map<string, { index: number; name: string; kind?: string; mtu: number; up: boolean }>([['weft-tun', { index: 9, name: 'weft-tun', kind: 'tun', mtu: 1500, up: false }]]);
  const nl = {
    getLink: async (n: string) => links.get(n),
    listAddresses: async () => [],
    listRoutes: async () => [],
    index: async (n: string) => links.get(n)!.index,
    createBridge: async (s: { name: string; mtu: number }) => {
      calls.push(`create ${s.name}`);
      links.set(s.name, { index: 5, name: s.name, kind: 'bridge', mtu: s.mtu, up: false });
    },
    addAddress: async (i: number, c: string) => void calls.push(`addr ${i} ${c}`),
    setUp: async (i: number) => void calls.push(`up ${i}`),
    setMtu: async (i: number, m: number) => void calls.push(`mtu ${i} ${m}`),
    replaceRoute: async (r: { dst: string }) => void calls.push(`route ${r.dst}`),
  };
  return { nl: nl as unknown as Netlink, calls };
}

function fakeDataPath(): { open: (o: DataPathOptions) => UdpDataPath; pushed: PeerEntry[][]; opened: DataPathOptions[]; counters: Record<string, number> } {
  const pushed: PeerEntry[][] = [];
  const opened: DataPathOptions[] = [];
  const counters: Record<string, number> = { txPackets: 0, dropAuth: 0 };
  return {
    pushed,
    opened,
    counters,
    open: (o) => {
      opened.push(o);
      return { setPeers: (_local, p) => void pushed.push([...p]), stats: () => ({ ...counters }), close: () => undefined };
    },
  };
}

const local = lease('10.43.7.0/24', '198.18.0.11');
const underlay = { iface: 'eth0', publicIP: '198.18.0.11', mtu: 1500 };
const sysctl = async () => undefined;

describe('udp backend', () => {
  it('opens the forwarder once, pushes the peers before the route into the TUN device, and sets the kernel up', async () => {
    const { nl, calls } = fakeNetlink();
    const dp = fakeDataPath();
    const b = createUdpBackend({ netlink: nl, config: parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp' } }), underlay, sysctl, log: pino({ level: 'silent' }), stateDir: '/nonexistent', openDataPath: dp.open });
    const r = await b.reconcile(local, [lease('10.43.3.0/24', '198.18.0.13'), lease('10.43.4.0/24', '198.18.0.14', 'vxlan')]);
    expect(r.peers).toBe(1);
    expect(r.skipped).toHaveLength(1);
    expect(dp.opened).toEqual([{ tunName: 'weft-tun', queues: 1, bindIp: '198.18.0.11', port: 8285, sealed: false, epoch: 0 }]);
    expect(dp.pushed).toHaveLength(1);
    expect(dp.pushed[0]![0]!.keys).toEqual([]);
    expect(calls).toEqual(['create weft0', 'addr 5 10.43.7.1/24', 'up 5', 'mtu 9 1472', 'up 9', 'route 10.43.0.0/16']);
    await b.reconcile(local, []);
    expect(dp.opened).toHaveLength(1);
    expect(dp.pushed.at(-1)).toEqual([]);
    await b.close();
  });

  it('sealed: pushes the keys, re-derives them when the key source changes, and persists a growing epoch', async () => {
    const { nl } = fakeNetlink();
    const dp = fakeDataPath();
    let ring = { keys: [{ id: 1, secret: Buffer.alloc(32, 1) }] };
    const subs: (() => void)[] = [];
    const keys: UdpKeySource = { current: () => ring, subscribe: (fn) => (subs.push(fn), () => undefined) };
    const stateDir = await mkdtemp('/tmp/weft-udp-unit-');
    const config = parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp', Encrypt: true } });
    const b = createUdpBackend({ netlink: nl, config, underlay, sysctl, log: pino({ level: 'silent' }), stateDir, keys, openDataPath: dp.open });
    await b.reconcile(local, [lease('10.43.3.0/24', '198.18.0.13')]);
    expect(dp.opened[0]!.sealed).toBe(true);
    expect(dp.pushed[0]![0]!.keys.map((k) => k.id)).toEqual([1]);
    ring = { keys: [{ id: 2, secret: Buffer.alloc(32, 2) }, ring.keys[0]!] };
    subs.forEach((fn) => fn());
    expect(dp.pushed).toHaveLength(2);
    expect(dp.pushed[1]![0]!.keys.map((k) => k.id)).toEqual([2, 1]);
    await b.close();
    const again = createUdpBackend({ netlink: nl, config, underlay, sysctl, log: pino({ level: 'silent' }), stateDir, keys, openDataPath: dp.open });
    await again.reconcile(local, []);
    expect(dp.opened[1]!.epoch).toBeGreaterThan(dp.opened[0]!.epoch);
    await again.close();
    await rm(stateDir, { recursive: true });
  });

  it('refuses a sealed network without a key source', () => {
    const { nl } = fakeNetlink();
    const config = parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp', Encrypt: true } });
    expect(() => createUdpBackend({ netlink: nl, config, underlay, sysctl, log: pino({ level: 'silent' }), stateDir: '/x' })).toThrow(/Encrypt is true but no key source/);
  });

  it('logs drops at most once per interval, with the counts since the last line', async () => {
    vi.useFakeTimers();
    try {
      const { nl } = fakeNetlink();
      const dp = fakeDataPath();
      const lines: unknown[] = [];
      const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
      const b = createUdpBackend({ netlink: nl, config: parseNetworkConfig({ Network: '10.43.0.0/16', Backend: { Type: 'udp' } }), underlay, sysctl, log, stateDir: '/x', openDataPath: dp.open, statsIntervalMs: 1000 });
      await b.reconcile(local, []);
      for (let i = 0; i < 1000; i++) dp.counters['dropAuth']!++;
      vi.advanceTimersByTime(1000);
      vi.advanceTimersByTime(1000); // nothing new: no line
      dp.counters['dropAuth']! += 5;
      vi.advanceTimersByTime(1000);
      const drops = lines.filter((l) => (l as { msg: string }).msg.startsWith('udp data path dropped')) as { dropped: Record<string, number> }[];
      expect(drops.map((d) => d.dropped)).toEqual([{ dropAuth: 1000 }, { dropAuth: 5 }]);
      await b.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
