// Which names a host registers and how: attachment names (weft attach --name,
// Kubernetes pods, podman containers), registration through the attachment
// service's events, `weft dns add/rm` kept across restarts, the listen flag,
// and the resolver file of a named namespace.

import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attachment } from '../../agent/api/types.js';
import type { AttachmentEvent, AttachmentService } from '../../agent/attachments/service.js';
import { DnsComponent, parseDomain } from '../../agent/components/dns.js';
import { NodeState } from '../../agent/core/node-state.js';
import { parseListen } from '../../agent/dns/listen.js';
import { attachmentNames } from '../../agent/dns/names.js';
import { RecordStore } from '../../agent/dns/record-store.js';
import { MARKER, namedNetns, removeNetnsResolvConf, writeNetnsResolvConf } from '../../agent/dns/resolv-conf.js';
import { dnsStatusLine } from '../../agent/commands/dns.js';
import { parseCidr } from '../../ipam/cidr.js';

const base: Attachment = { containerId: 'c1', ifname: 'eth0', netns: '/run/netns/app1', ip: '10.42.1.2/24', gateway: '10.42.1.1', mac: '02:00:00:00:00:01', mtu: 1450, hostIfName: 'vethx', routes: [], createdAt: '2026-01-01T00:00:00Z' };

describe('attachment names', () => {
  it('weft attach --name web → web; a pod → pod.ns and pod; podman (name only) → the container name', () => {
    expect(attachmentNames({ name: 'web' }).names).toEqual(['web']);
    expect(attachmentNames({ name: 'nginx-7d9', podNamespace: 'Default' }).names).toEqual(['nginx-7d9.default', 'nginx-7d9']);
    expect(attachmentNames({ name: 'My_Container' }).names).toEqual(['my_container']);
    expect(attachmentNames({}).names).toEqual([]);
  });

  it('skips names that are not DNS names', () => {
    expect(attachmentNames({ name: 'bad name!' })).toEqual({ names: [], skipped: ['bad name!'] });
    expect(attachmentNames({ name: '-x' }).skipped).toEqual(['-x']);
  });
});

describe('flags', () => {
  it('--dns-listen: gateway, gateway:PORT, a list, empty; refuses the rest', () => {
    expect(parseListen('gateway')).toEqual({ kind: 'gateway', port: 53 });
    expect(parseListen('gateway:5353')).toEqual({ kind: 'gateway', port: 5353 });
    expect(parseListen('')).toEqual({ kind: 'off' });
    expect(parseListen('127.0.0.1:53,[::1]:53')).toEqual({ kind: 'fixed', addresses: [{ host: '127.0.0.1', port: 53 }, { host: '::1', port: 53 }] });
    expect(() => parseListen('localhost:53')).toThrow(/dns-listen/);
    expect(() => parseListen('gateway:70000')).toThrow(/dns-listen/);
  });

  it('--dns-domain: trailing dot optional, lower case, a valid name', () => {
    expect(parseDomain('Weft.Local.')).toBe('weft.local');
    expect(() => parseDomain('bad domain')).toThrow(/dns-domain/);
  });
});

describe('resolv.conf of a named namespace', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is written for /run/netns/NAME, removed on detach, and never overwrites a file weft did not write', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-dns-'));
    expect(namedNetns('/run/netns/app1')).toBe('app1');
    expect(namedNetns('/proc/123/ns/net')).toBeUndefined();
    const dns = { nameservers: ['10.42.1.1'], search: ['weft.local'], options: ['ndots:1'] };
    const path = await writeNetnsResolvConf(dir, '/run/netns/app1', dns);
    const text = await readFile(path!, 'utf8');
    expect(text).toContain('nameserver 10.42.1.1');
    expect(text).toContain('search weft.local');
    await removeNetnsResolvConf(dir, '/run/netns/app1');
    await expect(readFile(path!, 'utf8')).rejects.toThrow();
    await mkdir(join(dir, 'mine'));
    await writeFile(join(dir, 'mine', 'resolv.conf'), 'nameserver 192.0.2.1\n');
    expect(await writeNetnsResolvConf(dir, '/run/netns/mine', dns)).toBeUndefined();
    await removeNetnsResolvConf(dir, '/run/netns/mine');
    expect(await readFile(join(dir, 'mine', 'resolv.conf'), 'utf8')).toBe('nameserver 192.0.2.1\n');
    expect(MARKER.startsWith('#')).toBe(true);
  });
});

/** A stand-in for the attachment service: a list and the event subscription, nothing else. */
function fakeService(list: Attachment[]): { service: AttachmentService; emit: (ev: AttachmentEvent) => void } {
  const listeners = new Set<(ev: AttachmentEvent) => void>();
  const service = {
    list: () => ({ attachments: list.map((a) => ({ ...a, stale: false })) }),
    subscribe: (fn: (ev: AttachmentEvent) => void) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  } as unknown as AttachmentService; // only list() and subscribe() are used by the DNS component
  // As the real service: the records change first, then listeners hear of it.
  const emit = (ev: AttachmentEvent): void => {
    const i = list.findIndex((a) => a.containerId === ev.attachment.containerId && a.ifname === ev.attachment.ifname);
    if (i >= 0) list.splice(i, 1);
    if (ev.kind === 'attached') list.push(ev.attachment);
    listeners.forEach((fn) => fn(ev));
  };
  return { service, emit };
}

describe('DNS component registration', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function component(list: Attachment[], store = new RecordStore({ localId: '198.18.0.11' })): Promise<{ dns: DnsComponent; store: RecordStore; emit: (ev: AttachmentEvent) => void }> {
    const { service, emit } = fakeService(list);
    const state = new NodeState({ iface: 'eth0', publicIP: '198.18.0.11', mtu: 1500 });
    const dns = new DnsComponent({ state, store, attachments: () => service, stateDir: dir, listen: '', domain: 'weft.local.', upstreams: [], ttl: 5, upstreamTimeoutMs: 500, log: pino({ level: 'silent' }), etcNetns: join(dir, 'etc-netns') });
    await dns.start();
    return { dns, store, emit };
  }

  it('announces recorded attachments on start, follows attach and detach events', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-dns-'));
    const { dns, store, emit } = await component([{ ...base, name: 'web' }]);
    expect(store.lookup('web')).toEqual(['10.42.1.2']);
    const pod: Attachment = { ...base, containerId: 'c2', ip: '10.42.1.3/24', name: 'api', podNamespace: 'prod', network: 'weft', netns: '/run/netns/cni-1' };
    emit({ kind: 'attached', attachment: pod });
    expect(store.lookup('api.prod')).toEqual(['10.42.1.3']);
    expect(store.lookup('api')).toEqual(['10.42.1.3']);
    emit({ kind: 'detached', attachment: pod });
    expect(store.lookup('api.prod')).toBeUndefined();
    expect(store.lookup('web')).toEqual(['10.42.1.2']);
    // Attached again under another name and address (a rebuilt attachment): the old record goes.
    emit({ kind: 'attached', attachment: { ...base, name: 'www', ip: '10.42.1.7/24' } });
    expect(store.lookup('web')).toBeUndefined();
    expect(store.lookup('www')).toEqual(['10.42.1.7']);
    // A second interface of the same container keeps both.
    emit({ kind: 'attached', attachment: { ...base, ifname: 'eth1', name: 'www', ip: '10.42.1.8/24' } });
    expect(store.lookup('www')).toEqual(['10.42.1.7', '10.42.1.8']);
    await dns.stop();
  });

  it('weft dns add/rm: validated, kept across a restart, rm of a container name says to detach', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-dns-'));
    const first = await component([{ ...base, name: 'web' }]);
    const routes = first.dns.routes;
    await routes['POST /v1/dns/add']!({ name: 'DB', ip: '10.42.9.9' }, new URLSearchParams());
    await expect(routes['POST /v1/dns/add']!({ name: 'db', ip: 'nope' }, new URLSearchParams())).rejects.toThrow(/not an IPv4 or IPv6/);
    await expect(routes['POST /v1/dns/add']!({ name: 'a b', ip: '10.0.0.1' }, new URLSearchParams())).rejects.toThrow(/invalid label/);
    await expect(routes['POST /v1/dns/rm']!({ name: 'web' }, new URLSearchParams())).rejects.toThrow(/detach it/);
    expect(first.store.lookup('db')).toEqual(['10.42.9.9']);
    await first.dns.stop();
    const second = await component([]);
    expect(second.store.lookup('db')).toEqual(['10.42.9.9']);
    expect(second.store.lookup('web')).toBeUndefined();
    await second.dns.routes['POST /v1/dns/rm']!({ name: 'db', ip: '10.42.9.9' }, new URLSearchParams());
    expect(second.store.lookup('db')).toBeUndefined();
    const line = dnsStatusLine({ dns: second.dns.status() });
    expect(line).toMatch(/^off/);
    await second.dns.stop();
  });
});

describe('CNI result', () => {
  it("carries weft's DNS server and search domain when DNS is on, nothing when off", async () => {
    const { cniService } = await import('../../agent/cni-service.js');
    const attachments = { attach: async () => ({ ...base, name: 'p', podNamespace: 'ns' }) } as unknown as AttachmentService; // add() uses attach() only
    const req = { networkName: 'weft', containerId: 'c1', ifname: 'eth0', runDir: '/run/weft', netns: '/run/netns/x', pod: { name: 'p', namespace: 'ns' } };
    const on = cniService({ attachments, notReady: () => [], mtu: () => 1450, dns: (a) => ({ nameservers: [a.gateway], search: ['weft.local'], options: ['ndots:1'] }) });
    expect((await on.add(req)).dns).toEqual({ nameservers: ['10.42.1.1'], search: ['weft.local'], options: ['ndots:1'] });
    const off = cniService({ attachments, notReady: () => [], mtu: () => 1450, dns: () => undefined });
    expect((await off.add(req)).dns).toEqual({});
  });
});

describe('DNS component listening', () => {
  it('--dns-listen at a fixed address serves there; an address that is not this host\'s is refused with the flag named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-dns-'));
    try {
      const { service } = fakeService([]);
      const state = new NodeState({ iface: 'eth0', publicIP: '198.18.0.11', mtu: 1500 });
      const make = (listen: string): DnsComponent =>
        new DnsComponent({ state, store: new RecordStore({ localId: '198.18.0.11' }), attachments: () => service, stateDir: dir, listen, domain: 'weft.local.', upstreams: [], ttl: 5, upstreamTimeoutMs: 500, log: pino({ level: 'silent' }) });
      const ok = make('127.0.0.1:0');
      await ok.start();
      expect((ok.status()['listening'] as string[])[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(dnsStatusLine({ dns: ok.status() })).toMatch(/^on 127\.0\.0\.1:\d+, weft\.local\. 0 names/);
      await ok.stop();
      await expect(make('198.51.100.77:0').start()).rejects.toThrow(/--dns-listen 198\.51\.100\.77:0: cannot bind/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('status line and the native fast path', () => {
  it('shows the natively answered queries (already counted in the total) and drops waiting for JS', () => {
    const dns = { enabled: true, listening: ['10.42.1.1:53'], domain: 'weft.local.', upstreams: [], records: { names: 1, entries: 1, visible: 1, tombstones: 0 } };
    const queries = { queries: 10, servfail: 0, formerr: 0, refused: 1 };
    expect(dnsStatusLine({ dns: { ...dns, queries, nativeUdp: { hits: 7, dropMissQueue: 0 } } })).toContain('10 queries (0 SERVFAIL, 0 FORMERR, 1 refused, 7 answered natively)');
    expect(dnsStatusLine({ dns: { ...dns, queries, nativeUdp: { hits: 7, dropMissQueue: 2 } } })).toContain('7 answered natively, 2 dropped waiting for JS)');
    expect(dnsStatusLine({ dns: { ...dns, queries } })).toContain('(0 SERVFAIL, 0 FORMERR, 1 refused)');
  });

  it('pushes allowed networks as (net, mask) pairs, at most 32', async () => {
    const { encodeNets } = await import('../../agent/dns/native-fastpath.js');
    const b = encodeNets([parseCidr('127.0.0.0/8'), parseCidr('10.42.0.0/16')]);
    expect(b.toString('hex')).toBe('7f000000ff0000000a2a0000ffff0000');
    expect(encodeNets(Array.from({ length: 40 }, () => parseCidr('10.0.0.0/8'))).length).toBe(32 * 8);
  });
});
