// The vxlan data plane against the real kernel: two lab hosts, the backend
// driven in-process through netlink opened inside each host's namespace (no
// agent process), one container per host plumbed onto weft0 by hand with `ip`.
// Containers ping both ways, 50 MB cross intact, the full-MTU DF ping passes
// and one byte more fails loudly, leases going and routes deleted by hand
// heal on the next pass, a correct host costs zero kernel writes (also for a
// "restarted" backend, under a running ping that must lose nothing), and
// --ip-masq lets containers reach the underlay.

import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { applyMasquerade, MASQ_TABLE, type NftRunner } from '../../encap/masquerade.js';
import { type Netlink, openNetlink } from '../../encap/netlink/index.js';
import type { SysctlWriter } from '../../encap/sysctl.js';
import { createVxlanBackend, type VxlanBackend } from '../../encap/vxlan/index.js';
import { assertRoot, createLab, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabHost } from '../lab/index.js';

const config: NetworkConfig = parseNetworkConfig({ Network: '10.42.0.0/16', Backend: { Type: 'vxlan' } });
const log = pino({ level: 'silent' });
const WRITE = /^(add|replace|delete|create|set|append|rename)/;

/** sysctl inside the lab host (never the root namespace's). */
const hostSysctl = (host: LabHost): SysctlWriter => async (key, value) => void (await host.exec(['sysctl', '-qw', `${key}=${value}`]));
const hostNft = (host: LabHost): NftRunner => async (script) => void (await host.exec(['nft', '-f', '-'], { input: script }));

/** The same Netlink, counting every call that writes to the kernel. */
function counting(nl: Netlink): { nl: Netlink; writes: string[] } {
  const writes: string[] = [];
  const proxy = new Proxy(nl, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      const fn = v as (...args: unknown[]) => unknown;
      if (typeof prop === 'string' && WRITE.test(prop)) {
        return (...args: unknown[]) => {
          writes.push(prop);
          return fn.apply(target, args);
        };
      }
      return fn.bind(target);
    },
  });
  return { nl: proxy, writes };
}

interface Node {
  host: LabHost;
  nl: Netlink;
  backend: VxlanBackend;
  lease: Lease;
  container: LabContainer;
  ip: string;
}

function leaseFor(host: LabHost, i: number, vtepMac: unknown): Lease {
  return {
    subnet: parseCidr(`10.42.${i}.0/24`),
    attrs: { publicIP: host.ip, backendType: 'vxlan', backendData: { VtepMAC: vtepMac } },
    leaseId: '0',
    modRevision: 1,
  };
}

function backendFor(host: LabHost, nl: Netlink): VxlanBackend {
  return createVxlanBackend({ netlink: nl, config, underlay: { iface: host.iface, publicIP: host.ip, mtu: 1500 }, sysctl: hostSysctl(host), log });
}

/** A veth from the container onto weft0, with an address and a default route via the gateway. */
async function plumb(host: LabHost, c: LabContainer, ip: string, gw: string, n: number): Promise<void> {
  await host.ipBatch([`link add vc${n} mtu 1450 type veth peer name eth0 mtu 1450 netns ${c.name}`, `link set vc${n} master weft0 up`]);
  await c.ipBatch([`addr add ${ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${gw}`]);
}

async function ping(c: LabContainer, ip: string, extra: string[] = []): Promise<{ ok: boolean; out: string; received: number; sent: number }> {
  const r = await c.exec(['ping', '-n', '-W', '2', ...extra, ip], { allowFail: true, timeoutMs: 30_000 });
  const out = r.stdout + r.stderr;
  const m = out.match(/(\d+) packets transmitted, (\d+) received/);
  return { ok: r.code === 0, out, sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

async function json(host: LabHost, argv: string[]): Promise<Record<string, unknown>[]> {
  const r = await host.exec(argv);
  return JSON.parse(r.stdout || '[]') as Record<string, unknown>[];
}

/** What the kernel of `host` holds for the remote subnet 10.42.<i>.0/24. */
async function remoteObjects(host: LabHost, i: number): Promise<{ routes: number; neighs: number; fdb: number }> {
  const routes = await json(host, ['ip', '-j', 'route', 'show', 'proto', '87']);
  const neighs = await json(host, ['ip', '-j', 'neigh', 'show', 'dev', 'weft.1']);
  const fdb = await json(host, ['bridge', '-j', 'fdb', 'show', 'dev', 'weft.1']);
  return {
    routes: routes.filter((r) => r.dst === `10.42.${i}.0/24`).length,
    neighs: neighs.filter((n) => n.dst === `10.42.${i}.0` && (n.state as string[] | undefined)?.includes('PERMANENT')).length,
    fdb: fdb.filter((f) => f.dst === `198.18.0.${10 + i}`).length,
  };
}

describe('vxlan data plane between two lab hosts', () => {
  let lab: Lab;
  const nodes: Node[] = [];
  const reconcileAll = () => Promise.all(nodes.map((n) => n.backend.reconcile(n.lease, nodes.filter((o) => o !== n).map((o) => o.lease))));

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 2, etcd: false });
    for (const [k, host] of lab.hosts.entries()) {
      const i = k + 1;
      const nl = await openNetlink({ netnsPath: host.netnsPath });
      const backend = backendFor(host, nl);
      const { VtepMAC } = await backend.leaseData();
      nodes.push({ host, nl, backend, lease: leaseFor(host, i, VtepMAC), container: await host.addContainer(), ip: `10.42.${i}.2` });
    }
    const reports = await reconcileAll();
    for (const r of reports) expect(r.failed).toEqual([]);
    for (const [k, n] of nodes.entries()) await plumb(n.host, n.container, n.ip, `10.42.${k + 1}.1`, k + 1);
  });

  afterAll(async () => {
    for (const n of nodes) {
      await n.backend.close().catch(() => undefined);
      n.nl.close();
    }
    await lab?.destroy();
  });

  it('programs flannel\'s layout: VTEP attributes, MTUs, addresses, forwarding on', async () => {
    const [h1] = nodes;
    const [vtep] = await json(h1!.host, ['ip', '-d', '-j', 'link', 'show', 'weft.1']);
    const info = (vtep!.linkinfo as { info_data: Record<string, unknown> }).info_data;
    expect(vtep!.mtu).toBe(1450);
    expect(vtep!.address).toBe(h1!.lease.attrs.backendData.VtepMAC);
    expect(info).toMatchObject({ id: 1, local: h1!.host.ip, port: 8472, learning: false, link: 'eth0' });
    const [br] = await json(h1!.host, ['ip', '-j', 'addr', 'show', 'weft0']);
    expect(br!.mtu).toBe(1450);
    const addrs = (br!.addr_info as { local: string; prefixlen: number }[]).map((a) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toContain('10.42.1.1/24');
    const fwd = await h1!.host.exec(['sysctl', '-n', 'net.ipv4.ip_forward']);
    expect(fwd.stdout.trim()).toBe('1');
    expect(await remoteObjects(h1!.host, 2)).toEqual({ routes: 1, neighs: 1, fdb: 1 });
  });

  it('containers on the two hosts ping each other both ways', async () => {
    const [a, b] = nodes;
    const ab = await ping(a!.container, b!.ip, ['-c', '3', '-i', '0.2']);
    expect(ab.ok, ab.out).toBe(true);
    const ba = await ping(b!.container, a!.ip, ['-c', '3', '-i', '0.2']);
    expect(ba.ok, ba.out).toBe(true);
  });

  it('a DF ping at the full container MTU passes; one byte more fails with "message too long"', async () => {
    const [a, b] = nodes;
    const full = await ping(a!.container, b!.ip, ['-c', '1', '-M', 'do', '-s', String(1450 - 28)]);
    expect(full.ok, full.out).toBe(true);
    const over = await ping(a!.container, b!.ip, ['-c', '1', '-M', 'do', '-s', String(1450 - 27)]);
    expect(over.ok).toBe(false);
    expect(over.out).toMatch(/message too long/i);
  });

  it('a 50 MB TCP transfer arrives intact', async () => {
    const [a, b] = nodes;
    const file = join(lab.tmpDir, 'blob');
    const data = randomBytes(50 * 1024 * 1024);
    await writeFile(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    const server = b!.container.spawn([
      process.execPath,
      '-e',
      `const h=require('crypto').createHash('sha256');let n=0;
       const srv=require('net').createServer((s)=>{s.on('data',(d)=>{h.update(d);n+=d.length});s.on('end',()=>{console.log('got',n,h.digest('hex'));srv.close()})});
       srv.listen(5001,'${b!.ip}',()=>console.log('listening'));`,
    ]);
    await server.waitForOutput(/listening/);
    await a!.container.exec(
      [process.execPath, '-e', `const s=require('net').connect(5001,'${b!.ip}',()=>require('fs').createReadStream('${file}').pipe(s));`],
      { timeoutMs: 60_000 },
    );
    const m = await server.waitForOutput(/got (\d+) ([0-9a-f]{64})/, 30_000);
    expect(Number(m[1])).toBe(data.length);
    expect(m[2]).toBe(want);
  });

  it('an already-correct host costs zero kernel writes', async () => {
    const [a] = nodes;
    const { nl, writes } = counting(a!.nl);
    const backend = backendFor(a!.host, nl);
    const report = await backend.reconcile(a!.lease, [nodes[1]!.lease]);
    expect(report.ops).toBe(0);
    expect(writes).toEqual([]);
    await backend.close();
  });

  it('a restarted backend (fresh netlink, no close of the old one) keeps its MAC and writes nothing while a ping runs lossless', async () => {
    const [a, b] = nodes;
    const pinging = ping(a!.container, b!.ip, ['-c', '40', '-i', '0.05']);
    await new Promise((r) => setTimeout(r, 300));
    const fresh = await openNetlink({ netnsPath: a!.host.netnsPath });
    try {
      const { nl, writes } = counting(fresh);
      const backend = backendFor(a!.host, nl);
      expect((await backend.leaseData()).VtepMAC).toBe(a!.lease.attrs.backendData.VtepMAC);
      const report = await backend.reconcile(a!.lease, [b!.lease]);
      expect(report.ops).toBe(0);
      expect(writes).toEqual([]);
      await backend.close();
    } finally {
      fresh.close();
    }
    const p = await pinging;
    expect(p.sent).toBe(40);
    expect(p.received, p.out).toBe(40);
  });

  it('a route deleted by hand comes back on the next pass, and only it is written', async () => {
    const [a, b] = nodes;
    await a!.host.exec(['ip', 'route', 'del', '10.42.2.0/24']);
    expect((await ping(a!.container, b!.ip, ['-c', '1'])).ok).toBe(false);
    const report = await a!.backend.reconcile(a!.lease, [b!.lease]);
    expect(report.ops).toBe(1);
    expect(report.failed).toEqual([]);
    expect(await remoteObjects(a!.host, 2)).toEqual({ routes: 1, neighs: 1, fdb: 1 });
    const p = await ping(a!.container, b!.ip, ['-c', '1']);
    expect(p.ok, p.out).toBe(true);
  });

  it('a lease that goes takes its route, neighbour and FDB entry with it; coming back restores them', async () => {
    const [a, b] = nodes;
    const gone = await a!.backend.reconcile(a!.lease, []);
    expect(gone.failed).toEqual([]);
    expect(gone.ops).toBe(3);
    expect(await remoteObjects(a!.host, 2)).toEqual({ routes: 0, neighs: 0, fdb: 0 });
    const back = await a!.backend.reconcile(a!.lease, [b!.lease]);
    expect(back.ops).toBe(3);
    expect(await remoteObjects(a!.host, 2)).toEqual({ routes: 1, neighs: 1, fdb: 1 });
    expect((await ping(a!.container, b!.ip, ['-c', '1'])).ok).toBe(true);
  });

  it('--ip-masq lets a container reach the underlay, and disabling it removes weft\'s table', async () => {
    const [a, b] = nodes;
    const run = hostNft(a!.host);
    // The underlay has no route back to 10.42/16: without masquerading the reply is lost.
    expect((await ping(a!.container, UNDERLAY_GATEWAY, ['-c', '1'])).ok).toBe(false);
    await applyMasquerade({ enabled: true, network: config.network, run });
    await applyMasquerade({ enabled: true, network: config.network, run }); // idempotent
    const rules = await a!.host.exec(['nft', 'list', 'table', 'ip', MASQ_TABLE]);
    expect(rules.stdout.match(/masquerade/g)).toHaveLength(1);
    const out = await ping(a!.container, UNDERLAY_GATEWAY, ['-c', '1']);
    expect(out.ok, out.out).toBe(true);
    // Traffic inside the overlay keeps its source address: b's server sees a's container IP.
    const server = b!.container.spawn([
      process.execPath,
      '-e',
      `const srv=require('net').createServer((s)=>{console.log('peer',s.remoteAddress);s.end();srv.close()});srv.listen(5002,'${b!.ip}',()=>console.log('listening'));`,
    ]);
    await server.waitForOutput(/listening/);
    await a!.container.exec([process.execPath, '-e', `require('net').connect(5002,'${b!.ip}').on('data',()=>{}).on('end',()=>process.exit(0))`], { timeoutMs: 10_000 });
    expect((await server.waitForOutput(/peer (\S+)/))[1]).toBe(a!.ip);
    await applyMasquerade({ enabled: false, network: config.network, run });
    await applyMasquerade({ enabled: false, network: config.network, run });
    const after = await a!.host.exec(['nft', 'list', 'tables']);
    expect(after.stdout).not.toContain(MASQ_TABLE);
  });
});
