// encap/netlink against the real kernel: everything happens inside two
// throwaway namespaces this file creates (and always deletes), and every
// object is read back both through our own dump decoders and through
// `ip -j` / `bridge -j`, so the codec is checked against iproute2's view.
// Needs root and the native addon (sh native/build.sh).

import { execFileSync } from 'node:child_process';
import { closeSync, readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWeftError } from '../../ipam/errors.js';
import { type BulkOp, type Netlink, RTPROT_WEFT, isExists, isNotFound, openNetlink, openTun } from '../../encap/netlink/index.js';

const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
const NS1 = `weft-nltest-${tag}`;
const NS2 = `weft-nltest-${tag}-b`;
const path = (ns: string) => `/run/netns/${ns}`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// iproute2's JSON, typed loosely on purpose (any): we only read a few fields of it.
type Json = { [k: string]: any };

/** `ip -n NS -j ...`; a device that does not exist reads as an empty list. */
function ipj(ns: string, ...args: string[]): Json[] {
  try {
    return JSON.parse(sh('ip', ['-n', ns, '-j', ...args]) || '[]') as Json[];
  } catch (e) {
    if (/does not exist/.test(String((e as { stderr?: string }).stderr))) return [];
    throw e;
  }
}
const bridgej = (ns: string, ...args: string[]): Json[] => JSON.parse(sh('bridge', ['-n', ns, '-j', ...args]) || '[]') as Json[];

function rootLinkNames(): string[] {
  return (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as Json[]).map((l) => String(l.ifname));
}

let nl: Netlink;
const rootLinksBefore = rootLinkNames();

beforeAll(async () => {
  sh('ip', ['netns', 'add', NS1]);
  sh('ip', ['netns', 'add', NS2]);
  nl = await openNetlink({ netnsPath: path(NS1) });
});

afterAll(() => {
  try {
    nl?.close();
  } finally {
    for (const ns of [NS1, NS2]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone (or never made): nothing to clean
      }
    }
  }
});

describe('namespaces', () => {
  it('opens the socket inside the target netns and leaves this thread where it was', async () => {
    const before = readlinkSync('/proc/thread-self/ns/net');
    const other = await openNetlink({ netnsPath: path(NS2) });
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(before);
    // A fresh namespace holds only lo: proof the requests land there.
    expect((await other.listLinks()).map((l) => l.name)).toEqual(['lo']);
    other.close();
  });

  it('names a bad netns path in a WeftError', async () => {
    await expect(openNetlink({ netnsPath: '/run/netns/weft-nltest-does-not-exist' })).rejects.toMatchObject({
      code: 'KERNEL',
      details: { errno: 'ENOENT' },
    });
    // Not a namespace file: setns refuses it, and the thread still returns.
    const before = readlinkSync('/proc/thread-self/ns/net');
    await expect(openNetlink({ netnsPath: '/proc/self/ns/uts' })).rejects.toMatchObject({ details: { errno: 'EINVAL' } });
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(before);
  });
});

describe('links', () => {
  it('creates a bridge and sets it up', async () => {
    const br = await nl.createBridge({ name: 'weft0', mtu: 1450, mac: '02:42:0a:2a:01:01' });
    await nl.setUp('weft0');
    const [ip] = ipj(NS1, '-d', 'link', 'show', 'weft0');
    expect(ip.linkinfo.info_kind).toBe('bridge');
    expect(br).toMatchObject({ name: 'weft0', kind: 'bridge', mtu: 1450, mac: '02:42:0a:2a:01:01', index: ip.ifindex });
    expect((await nl.getLink('weft0'))?.up).toBe(true);
    expect(await nl.getLink('nope0')).toBeUndefined();
  });

  it('creates a veth pair with the peer in another namespace and enslaves this end', async () => {
    const veth = await nl.createVeth({ name: 'vweft-a', peerName: 'eth0', peerNetns: { path: path(NS2) }, mtu: 1450 });
    await nl.setMaster(veth.index, 'weft0');
    await nl.setUp(veth.index);
    const [peer] = ipj(NS2, 'link', 'show', 'eth0');
    expect(peer.mtu).toBe(1450);
    expect(ipj(NS1, 'link', 'show', 'eth0')).toEqual([]); // not left behind here
    const [ip] = ipj(NS1, 'link', 'show', 'vweft-a');
    expect(ip.master).toBe('weft0');
    const mine = await nl.getLink('vweft-a');
    expect(mine).toMatchObject({ kind: 'veth', masterIndex: (await nl.getLink('weft0'))?.index });
  });

  it('creates a VXLAN device with learning off on port 8472', async () => {
    await nl.createVeth({ name: 'under0', peerName: 'under1', peerNetns: { path: path(NS2) } });
    await nl.addAddress('under0', '198.18.0.1/24');
    await nl.setUp('under0');
    const under = await nl.index('under0');
    const vx = await nl.createVxlan({
      name: 'weft.1',
      vni: 1,
      local: '198.18.0.1',
      port: 8472,
      learning: false,
      dev: under,
      mtu: 1450,
      mac: '02:42:c6:12:00:01',
    });
    await nl.setUp('weft.1');
    expect(vx.vxlan).toEqual({ vni: 1, local: '198.18.0.1', port: 8472, learning: false, dev: under, ttl: 0 });
    const [ip] = ipj(NS1, '-d', 'link', 'show', 'weft.1');
    expect(ip.linkinfo.info_kind).toBe('vxlan');
    expect(ip.linkinfo.info_data).toMatchObject({ id: 1, local: '198.18.0.1', port: 8472, learning: false, link: 'under0' });
    expect(ip).toMatchObject({ mtu: 1450, address: '02:42:c6:12:00:01' });
  });

  it('lists links like ip does', async () => {
    const ours = await nl.listLinks();
    const theirs = ipj(NS1, 'link', 'show');
    expect(ours.map((l) => [l.index, l.name, l.mtu]).sort()).toEqual(theirs.map((l) => [l.ifindex, l.ifname, l.mtu]).sort());
  });

  it('changes mtu, mac, name and namespace, then deletes', async () => {
    // A veth, not a bridge: bridges are netns-local ("The interface netns is immutable").
    const l = await nl.createVeth({ name: 'weft-tmp', peerName: 'weft-tmpp' });
    await nl.setMtu(l.index, 1400);
    await nl.setMac(l.index, '02:00:00:00:00:aa');
    await nl.rename(l.index, 'weft-tmp2');
    expect(ipj(NS1, 'link', 'show', 'weft-tmp2')[0]).toMatchObject({ mtu: 1400, address: '02:00:00:00:00:aa' });
    await nl.setNetns('weft-tmp2', { path: path(NS2) });
    expect(await nl.getLink('weft-tmp2')).toBeUndefined();
    expect(ipj(NS2, 'link', 'show', 'weft-tmp2')).toHaveLength(1);
    const v = await nl.createBridge({ name: 'weft-tmp3' });
    await nl.deleteLink(v.index);
    expect(await nl.getLink('weft-tmp3')).toBeUndefined();
    const err = await nl.deleteLink(v.index).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
  });
});

describe('addresses', () => {
  it('adds exclusively, lists, and deletes', async () => {
    await nl.addAddress('weft0', '10.42.1.1/24');
    const ours = (await nl.listAddresses('weft0')).filter((a) => a.family === 2);
    const theirs = ipj(NS1, 'addr', 'show', 'dev', 'weft0')[0].addr_info.filter((a: Json) => a.family === 'inet');
    expect(ours.map((a) => `${a.address}/${a.prefixLen}`)).toEqual(theirs.map((a: Json) => `${a.local}/${a.prefixlen}`));
    expect(ours).toEqual([expect.objectContaining({ address: '10.42.1.1', prefixLen: 24, label: 'weft0' })]);

    const err = await nl.addAddress('weft0', '10.42.1.1/24').catch((e: unknown) => e);
    expect(isWeftError(err, 'KERNEL')).toBe(true);
    expect(err).toMatchObject({ details: { errno: 'EEXIST', op: 'add address', object: '10.42.1.1/24 dev weft0' } });
    expect((err as Error).message).toContain('netlink: add address 10.42.1.1/24 dev weft0: File exists (EEXIST)');

    await nl.addAddress('weft0', '10.42.1.2/24');
    await nl.deleteAddress('weft0', '10.42.1.2/24');
    expect((await nl.listAddresses('weft0')).map((a) => a.address)).not.toContain('10.42.1.2');
  });
});

describe('routes, neighbours, FDB on the VXLAN device', () => {
  const route = { dst: '10.42.3.0/24', gateway: '10.42.3.0', dev: 'weft.1', onlink: true };

  it('adds an onlink route marked with weft’s protocol', async () => {
    await nl.addRoute(route);
    const ours = await nl.listRoutes({ proto: RTPROT_WEFT });
    const vx = await nl.index('weft.1');
    expect(ours).toEqual([
      expect.objectContaining({ dst: '10.42.3.0/24', gateway: '10.42.3.0', dev: vx, onlink: true, proto: RTPROT_WEFT, table: 254 }),
    ]);
    const theirs = ipj(NS1, 'route', 'show', 'proto', String(RTPROT_WEFT));
    expect(theirs).toEqual([expect.objectContaining({ dst: '10.42.3.0/24', gateway: '10.42.3.0', dev: 'weft.1', flags: ['onlink'] })]);
    // The kernel's own connected route is there but not ours.
    expect((await nl.listRoutes()).some((r) => r.dst === '198.18.0.0/24' && r.proto !== RTPROT_WEFT)).toBe(true);
  });

  it('reports EEXIST on a second exclusive add, the way an operator reads it', async () => {
    const err = await nl.addRoute(route).catch((e: unknown) => e);
    expect(isExists(err)).toBe(true);
    expect((err as Error).message).toMatch(/^netlink: add route 10\.42\.3\.0\/24 via 10\.42\.3\.0 dev weft\.1: File exists \(EEXIST\)/);
    // By index the name is looked up for the message.
    const byIndex = await nl.addRoute({ ...route, dev: await nl.index('weft.1') }).catch((e: unknown) => e);
    expect((byIndex as Error).message).toContain('dev weft.1: File exists (EEXIST)');
  });

  it('replaces a route', async () => {
    await nl.replaceRoute({ ...route, gateway: '10.42.3.1' });
    expect(ipj(NS1, 'route', 'show', '10.42.3.0/24')[0]).toMatchObject({ gateway: '10.42.3.1' });
    await nl.replaceRoute(route);
  });

  it('adds and replaces a permanent neighbour', async () => {
    await nl.addNeighbour({ dev: 'weft.1', ip: '10.42.3.0', mac: '02:42:c6:12:00:02' });
    await expect(nl.addNeighbour({ dev: 'weft.1', ip: '10.42.3.0', mac: '02:42:c6:12:00:02' })).rejects.toMatchObject({
      details: { errno: 'EEXIST' },
    });
    await nl.replaceNeighbour({ dev: 'weft.1', ip: '10.42.3.0', mac: '02:42:c6:12:00:03' });
    const ours = await nl.listNeighbours('weft.1');
    expect(ours).toEqual([expect.objectContaining({ ip: '10.42.3.0', mac: '02:42:c6:12:00:03', permanent: true })]);
    const theirs = ipj(NS1, 'neigh', 'show', 'dev', 'weft.1');
    expect(theirs).toEqual([expect.objectContaining({ dst: '10.42.3.0', lladdr: '02:42:c6:12:00:03', state: ['PERMANENT'] })]);
  });

  it('adds FDB entries (VTEP MAC and the all-zero flood entry) with self, permanent', async () => {
    await nl.appendFdb({ dev: 'weft.1', mac: '02:42:c6:12:00:03', dst: '198.18.0.2' });
    await nl.appendFdb({ dev: 'weft.1', mac: '00:00:00:00:00:00', dst: '198.18.0.2' });
    await nl.appendFdb({ dev: 'weft.1', mac: '00:00:00:00:00:00', dst: '198.18.0.3' });
    await nl.replaceFdb({ dev: 'weft.1', mac: '02:42:c6:12:00:03', dst: '198.18.0.4' });
    const ours = (await nl.listFdb('weft.1')).map((f) => ({ mac: f.mac, dst: f.dst, permanent: f.permanent, self: f.self }));
    const theirs = bridgej(NS1, 'fdb', 'show', 'dev', 'weft.1').map((f) => ({
      mac: f.mac,
      dst: f.dst,
      permanent: f.state === 'permanent',
      self: (f.flags as string[]).includes('self'),
    }));
    const key = (f: { mac: string; dst?: string }) => `${f.mac} ${f.dst}`;
    expect(ours.sort((a, b) => key(a).localeCompare(key(b)))).toEqual(theirs.sort((a, b) => key(a).localeCompare(key(b))));
    expect(ours.map(key).sort()).toEqual(
      ['00:00:00:00:00:00 198.18.0.2', '00:00:00:00:00:00 198.18.0.3', '02:42:c6:12:00:03 198.18.0.4'].sort(),
    );
    expect(ours.every((f) => f.permanent && f.self)).toBe(true);
  });

  it('deletes them all, and a second delete is "not found"', async () => {
    await nl.deleteFdb({ dev: 'weft.1', mac: '00:00:00:00:00:00', dst: '198.18.0.3' });
    await nl.deleteFdb({ dev: 'weft.1', mac: '00:00:00:00:00:00', dst: '198.18.0.2' });
    await nl.deleteFdb({ dev: 'weft.1', mac: '02:42:c6:12:00:03' });
    expect(await nl.listFdb('weft.1')).toEqual([]);
    await nl.deleteNeighbour({ dev: 'weft.1', ip: '10.42.3.0' });
    expect(await nl.listNeighbours('weft.1')).toEqual([]);
    await nl.deleteRoute({ dst: '10.42.3.0/24', proto: RTPROT_WEFT });
    expect(await nl.listRoutes({ proto: RTPROT_WEFT })).toEqual([]);
    expect(ipj(NS1, 'route', 'show', 'proto', String(RTPROT_WEFT))).toEqual([]);
    for (const again of [
      nl.deleteRoute({ dst: '10.42.3.0/24', proto: RTPROT_WEFT }),
      nl.deleteNeighbour({ dev: 'weft.1', ip: '10.42.3.0' }),
      nl.deleteFdb({ dev: 'weft.1', mac: '02:42:c6:12:00:03' }),
      nl.deleteAddress('weft0', '10.42.9.9/24'),
    ]) {
      const err = await again.catch((e: unknown) => e);
      expect(isNotFound(err), String(err)).toBe(true);
    }
  });
});

describe('load', () => {
  const N = 1000;
  const hex = (n: number) => n.toString(16).padStart(2, '0');

  it(`survives ${N} neighbours + ${N} FDB entries + ${N} routes requested at once`, async () => {
    const dev = await nl.index('weft.1');
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, nl.inFlight)), 1);
    const ops: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      const hi = i >> 8;
      const lo = i & 255;
      ops.push(nl.addNeighbour({ dev, ip: `10.200.${hi}.${lo}`, mac: `02:00:00:01:${hex(hi)}:${hex(lo)}` }));
      ops.push(nl.appendFdb({ dev, mac: `02:00:00:02:${hex(hi)}:${hex(lo)}`, dst: `198.18.${1 + hi}.${lo}` }));
      ops.push(nl.addRoute({ dst: `10.${100 + hi}.${lo}.0/24`, gateway: `10.200.${hi}.${lo}`, dev, onlink: true }));
      peak = Math.max(peak, nl.inFlight);
    }
    await Promise.all(ops);
    clearInterval(sampler);
    expect(peak).toBe(64); // the cap was reached (so the queue was exercised) and never exceeded
    expect(await nl.listNeighbours(dev)).toHaveLength(N);
    expect(await nl.listFdb(dev)).toHaveLength(N);
    expect(await nl.listRoutes({ proto: RTPROT_WEFT })).toHaveLength(N);
    expect(ipj(NS1, 'route', 'show', 'proto', String(RTPROT_WEFT))).toHaveLength(N);

    // And concurrent dumps with writes in flight do not trip over each other.
    const [links, routes] = await Promise.all([nl.listLinks(), nl.listRoutes(), nl.listFdb(), nl.listNeighbours()]);
    expect(links.length).toBeGreaterThan(0);
    expect(routes.length).toBeGreaterThanOrEqual(N);

    const dels: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      const hi = i >> 8;
      const lo = i & 255;
      dels.push(nl.deleteNeighbour({ dev, ip: `10.200.${hi}.${lo}` }));
      dels.push(nl.deleteFdb({ dev, mac: `02:00:00:02:${hex(hi)}:${hex(lo)}` }));
      dels.push(nl.deleteRoute({ dst: `10.${100 + hi}.${lo}.0/24`, proto: RTPROT_WEFT }));
    }
    await Promise.all(dels);
    expect(await nl.listRoutes({ proto: RTPROT_WEFT })).toEqual([]);
    expect(await nl.listFdb(dev)).toEqual([]);
  });

  it(`bulk: ${3 * N} writes in order (route after its neighbour), each failure named, and deletes`, async () => {
    const dev = await nl.index('weft.1');
    const adds: BulkOp[] = [];
    for (let i = 0; i < N; i++) {
      const hi = i >> 8;
      const lo = i & 255;
      adds.push({ kind: 'replace-neigh', dev, ip: `10.201.${hi}.${lo}`, mac: `02:00:00:03:${hex(hi)}:${hex(lo)}` });
      adds.push({ kind: 'replace-fdb', dev, mac: `02:00:00:03:${hex(hi)}:${hex(lo)}`, dst: `198.18.${1 + hi}.${lo}` });
      adds.push({ kind: 'replace-route', route: { dst: `10.${110 + hi}.${lo}.0/24`, gateway: `10.201.${hi}.${lo}`, dev, onlink: true, proto: RTPROT_WEFT } });
    }
    // Two that the kernel refuses, in the middle: a gateway of the wrong family, a device that does not exist.
    adds.splice(1500, 0, { kind: 'replace-neigh', dev: 999_999, ip: '10.202.0.1', mac: '02:00:00:04:00:01' });
    adds.splice(2500, 0, { kind: 'delete-route', route: { dst: '10.250.250.0/24', proto: RTPROT_WEFT, dev } });
    const outcomes = await nl.bulk(adds);
    const failures = outcomes.flatMap((o, i) => (o ? [{ i, code: o.code, errno: o.details['errno'], message: o.message }] : []));
    expect(failures.map((f) => [f.i, f.errno])).toEqual([[1500, 'ENODEV'], [2500, 'ESRCH']]);
    expect(failures[0]!.message).toContain('replace neighbour 10.202.0.1 lladdr 02:00:00:04:00:01 dev if999999');
    expect(failures[1]!.message).toMatch(/delete route 10\.250\.250\.0\/24 dev weft\.1/);
    expect(ipj(NS1, 'route', 'show', 'proto', String(RTPROT_WEFT))).toHaveLength(N);
    expect(await nl.listNeighbours(dev)).toHaveLength(N);
    expect((await nl.listFdb(dev)).filter((f) => f.self)).toHaveLength(N);

    const dels: BulkOp[] = [];
    for (let i = 0; i < N; i++) {
      const hi = i >> 8;
      const lo = i & 255;
      dels.push({ kind: 'delete-route', route: { dst: `10.${110 + hi}.${lo}.0/24`, proto: RTPROT_WEFT } });
      dels.push({ kind: 'delete-fdb', dev, mac: `02:00:00:03:${hex(hi)}:${hex(lo)}` });
      dels.push({ kind: 'delete-neigh', dev, ip: `10.201.${hi}.${lo}` });
    }
    expect((await nl.bulk(dels)).filter(Boolean)).toEqual([]);
    expect(await nl.listRoutes({ proto: RTPROT_WEFT })).toEqual([]);
    expect(await nl.listNeighbours(dev)).toEqual([]);
  });
});

describe('TUN', () => {
  it('opens a TUN device inside the namespace (non-blocking), gone when closed', () => {
    const tun = openTun({ name: 'weft-tun0', netnsPath: path(NS1), nonBlock: true });
    try {
      expect(tun.name).toBe('weft-tun0');
      const [ip] = ipj(NS1, '-d', 'link', 'show', 'weft-tun0');
      expect(ip.linkinfo.info_kind).toBe('tun');
      expect(rootLinkNames()).not.toContain('weft-tun0');
    } finally {
      closeSync(tun.fd);
    }
    expect(ipj(NS1, 'link', 'show').map((l) => l.ifname)).not.toContain('weft-tun0');
  });
});

describe('root namespace', () => {
  it('was never touched', () => {
    expect(rootLinkNames().sort()).toEqual(rootLinksBefore.sort());
  });
});
