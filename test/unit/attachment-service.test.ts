// The attachment service with a fake kernel: the order of reserve / plumb /
// record, undo on failure, detach releasing first, idempotency, duplicate
// attach, and request validation. The pool and store are the real ones over
// in-memory storage.

import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { WeftError, isWeftError } from '../../ipam/errors.js';
import { defaultContainerId, parseAttachRequest } from '../../agent/attachments/validate.js';
import { hostIfNameFor } from '../../encap/plumb.js';
import { NET, NS, setup } from './support/attachment-fakes.js';

async function rejection(p: Promise<unknown>): Promise<WeftError> {
  try {
    await p;
  } catch (e) {
    if (isWeftError(e)) return e;
    throw e;
  }
  throw new Error('did not reject');
}

describe('AttachmentService', () => {
  it('attach reserves, then plumbs, then records; replies with the address, gateway, routes', async () => {
    const { service, events, store } = await setup();
    const a = await service.attach({ containerId: 'c1', netns: NS, name: 'web' });
    expect(a).toMatchObject({ containerId: 'c1', ifname: 'eth0', ip: '10.42.7.2/24', gateway: '10.42.7.1', mtu: 1450, name: 'web', routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1' }] });
    expect(a.hostIfName).toMatch(/^vw[0-9a-f]{12}$/);
    // The unplumb is the (no-op) sweep of a leftover veth by this key's name.
    expect(events).toEqual(['pool write 1', `unplumb ${a.hostIfName}`, `plumb ${a.hostIfName} 10.42.7.2/24 gw 10.42.7.1 mtu 1450`]);
    expect(store.get(a)).toEqual(a);
  });

  it('releases the address when plumbing fails', async () => {
    const { service, pool, plumber, events, store } = await setup();
    plumber.failPlumb = new WeftError('KERNEL', 'netlink: create veth: File exists (EEXIST)');
    const e = await rejection(service.attach({ containerId: 'c1', netns: NS }));
    expect(e.code).toBe('KERNEL');
    expect(pool.list(NET.subnet)).toEqual([]);
    expect(store.list()).toEqual([]);
    // plumb() undoes itself; after a failed plumb the service only gives the address back.
    expect(events.slice(events.findIndex((x) => x.startsWith('plumb')))).toEqual([expect.stringMatching(/^plumb /), 'pool write 0']);
  });

  it('a namespace that does not exist fails before anything is reserved', async () => {
    const { service, plumber, events } = await setup();
    plumber.missingNetns.add('/run/netns/gone');
    const e = await rejection(service.attach({ containerId: 'c1', netns: '/run/netns/gone' }));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toBe('network namespace /run/netns/gone does not exist');
    expect(events).toEqual([]);
  });

  it('detach releases the address first, then deletes the veth; twice is fine; unknown is fine', async () => {
    const { service, events, store } = await setup();
    const a = await service.attach({ containerId: 'c1', netns: NS });
    events.length = 0;
    expect(await service.detach({ containerId: 'c1' })).toEqual({ containerId: 'c1', ifname: 'eth0', released: '10.42.7.2' });
    expect(events).toEqual(['pool write 0', `unplumb ${a.hostIfName}`]);
    expect(store.list()).toEqual([]);
    expect(await service.detach({ containerId: 'c1' })).toEqual({ containerId: 'c1', ifname: 'eth0' });
    expect(await service.detach({ containerId: 'never', ifname: 'eth1' })).toEqual({ containerId: 'never', ifname: 'eth1' });
  });

  it('a duplicate attach returns the intact attachment as is, and re-plumbs a broken one with the same address', async () => {
    const { service, plumber, events } = await setup();
    const a = await service.attach({ containerId: 'c1', netns: NS });
    events.length = 0;
    expect(await service.attach({ containerId: 'c1', netns: NS })).toEqual(a);
    expect(events).toEqual([]);
    plumber.links.delete(a.hostIfName); // the veth vanished
    const b = await service.attach({ containerId: 'c1', netns: NS });
    expect(b.ip).toBe(a.ip);
    expect(events).toEqual([`unplumb ${a.hostIfName}`, `plumb ${a.hostIfName} 10.42.7.2/24 gw 10.42.7.1 mtu 1450`]);
    // Another namespace for the same key: the new request wins, same address.
    const c = await service.attach({ containerId: 'c1', netns: '/run/netns/c1-again' });
    expect(c).toMatchObject({ ip: a.ip, netns: '/run/netns/c1-again' });
  });

  it('a veth left by a crash (no record) is replaced, not an EEXIST failure', async () => {
    const { service, plumber, events } = await setup();
    const name = hostIfNameFor('c1', 'eth0');
    plumber.links.add(name);
    const a = await service.attach({ containerId: 'c1', netns: NS });
    expect(a.hostIfName).toBe(name);
    expect(events.slice(1)).toEqual([`unplumb ${name}`, `plumb ${name} 10.42.7.2/24 gw 10.42.7.1 mtu 1450`]);
  });

  it('parallel attaches get distinct addresses; parallel duplicates of one key get one', async () => {
    const { service } = await setup();
    const many = await Promise.all(Array.from({ length: 100 }, (_, i) => service.attach({ containerId: `c${i}`, netns: NS })));
    expect(new Set(many.map((a) => a.ip)).size).toBe(100);
    const dup = await Promise.all([1, 2, 3].map(() => service.attach({ containerId: 'same', netns: NS })));
    expect(new Set(dup.map((a) => a.ip)).size).toBe(1);
  });

  it('check reports what is missing; list flags stale attachments after a subnet change', async () => {
    const { service, plumber, setNetwork } = await setup();
    const a = await service.attach({ containerId: 'c1', netns: NS });
    expect((await service.check({ containerId: 'c1' })).ok).toBe(true);
    plumber.links.delete(a.hostIfName);
    expect(await service.check({ containerId: 'c1' })).toMatchObject({ ok: false, missing: [`host end ${a.hostIfName}`] });
    expect((await rejection(service.check({ containerId: 'nope' }))).code).toBe('NOT_FOUND');
    expect(service.list()).toMatchObject({ subnet: '10.42.7.0/24', attachments: [{ containerId: 'c1', stale: false }] });
    setNetwork({ subnet: parseCidr('10.42.9.0/24'), mtu: 1450 });
    expect(service.list().attachments[0]!.stale).toBe(true);
  });

  it('a second interface in one namespace gets its address but no second default route; check agrees', async () => {
    const { service } = await setup();
    const first = await service.attach({ containerId: 'c1', netns: NS });
    const second = await service.attach({ containerId: 'c1', ifname: 'eth1', netns: NS });
    expect(first.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.42.7.1' }]);
    expect(second).toMatchObject({ ifname: 'eth1', ip: '10.42.7.3/24', routes: [] });
    expect((await service.check({ containerId: 'c1', ifname: 'eth1' })).ok).toBe(true);
  });

  it('without a subnet lease, attach is UNAVAILABLE', async () => {
    const { service, setNetwork } = await setup();
    setNetwork(undefined);
    expect((await rejection(service.attach({ containerId: 'c1', netns: NS }))).code).toBe('UNAVAILABLE');
  });
});

describe('attach request validation', () => {
  const bad = (body: unknown): string => {
    try {
      parseAttachRequest(body);
    } catch (e) {
      expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('names the field at fault', () => {
    expect(bad(null)).toBe('request body must be a JSON object');
    expect(bad({ netns: NS })).toBe('containerId: is required');
    expect(bad({ containerId: '-x', netns: NS })).toMatch(/^containerId: "-x" must be/);
    expect(bad({ containerId: 'c', netns: NS, ifname: 'a/b' })).toMatch(/^ifname: /);
    expect(bad({ containerId: 'c', netns: NS, ifname: 'sixteen-chars-xx' })).toMatch(/^ifname: /);
    expect(bad({ containerId: 'c' })).toBe('netns: give exactly one of netns (a path) or pid');
    expect(bad({ containerId: 'c', netns: NS, pid: 1 })).toBe('netns: give exactly one of netns (a path) or pid');
    expect(bad({ containerId: 'c', netns: 'relative' })).toMatch(/^netns: "relative" must be an absolute path/);
    expect(bad({ containerId: 'c', pid: -3 })).toBe('pid: -3 is not a process ID');
    expect(bad({ containerId: 'c', netns: NS, mac: 'zz' })).toMatch(/^mac: /);
    expect(bad({ containerId: 'c', netns: NS, mac: '01:00:5e:00:00:01' })).toMatch(/^mac: .* multicast/);
    expect(bad({ containerId: 'c', netns: NS, mac: '00:00:00:00:00:00' })).toMatch(/^mac: .* all-zero/);
    expect(bad({ containerId: 'c', netns: NS, ip: '10.42.7' })).toMatch(/^ip: /);
  });

  it.each([
    ['ééééééééé', 'longer than 15 bytes'],
    ['eth%d', '"%"'],
    ['all', 'reserves'],
    ['default', 'reserves'],
    ['a\u0000b', 'NUL'],
    ['a b', 'whitespace'],
    ['a\u001bb', 'control'],
    ['..', '".."'],
  ])('refuses interface name %j before the kernel sees it (%s)', (ifname, why) => {
    expect(bad({ containerId: 'c', netns: NS, ifname })).toContain(why);
  });

  it('refuses control characters in names that are served as DNS, listed or logged', () => {
    expect(bad({ containerId: 'c', netns: NS, name: 'web\u001b[31m' })).toMatch(/^name: .* control characters/);
    expect(bad({ containerId: 'c', netns: NS, podNamespace: 'a\nb' })).toMatch(/^podNamespace: /);
    expect(bad({ containerId: 'c', netns: '/run/netns/a\u0007' })).toMatch(/^netns: /);
  });

  it('fills defaults: eth0, /proc/PID/ns/net', () => {
    expect(parseAttachRequest({ containerId: 'c', pid: 42 })).toEqual({ containerId: 'c', ifname: 'eth0', netns: '/proc/42/ns/net' });
    expect(parseAttachRequest({ containerId: 'c', netns: NS, mac: 'AA:BB:CC:DD:EE:F0', ip: '10.42.7.9/24' })).toMatchObject({ mac: 'aa:bb:cc:dd:ee:f0', ip: 0x0a2a0709 });
  });

  it('derives a deterministic container ID from --netns or --pid', () => {
    expect(defaultContainerId({ netns: '/run/netns/web-1' })).toBe('web-1');
    expect(defaultContainerId({ pid: 77 })).toBe('pid-77');
    expect(defaultContainerId({ netns: '/some/where/ns' })).toBe(defaultContainerId({ netns: '/some/where/ns' }));
    expect(defaultContainerId({ netns: '/some/where/ns' })).toMatch(/^netns-[0-9a-f]{16}$/);
  });
});
