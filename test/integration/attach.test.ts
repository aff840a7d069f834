// Attachments against the real kernel in a lab host: the service runs in the
// test process with its netlink socket inside the host's namespace (the way
// the agent runs inside it), over a bridge weft0 this file makes with `ip`
// (the vxlan backend makes it in production). Checked with `ip -n`, ping, and
// the state dir. Then the CLI, through the real API server on a unix socket.

import { join } from 'node:path';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAttachments, type Attachments } from '../../agent/attachments/wire.js';
import { startApiServer } from '../../agent/api/server.js';
import { socketPathOf } from '../../agent/api/client.js';
import type { AttachmentList } from '../../agent/api/types.js';
import { AddressPool, fileStorage, poolFile } from '../../ipam/address-pool.js';
import { parseCidr } from '../../ipam/cidr.js';
import { isWeftError } from '../../ipam/errors.js';
import { assertRoot, createLab, run, type Lab, type LabContainer, type LabHost } from '../lab/index.js';
import { weft } from '../lab/weft.js';

const SUBNET = parseCidr('10.42.7.0/24');
const GATEWAY = '10.42.7.1';
const MTU = 1450;
const log = pino({ level: 'silent' });

// iproute2's JSON, typed loosely on purpose: only a few fields are read.
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function ipj(ns: string, args: string[]): Promise<Json[]> {
  const r = await run(['ip', '-n', ns, '-j', ...args], { allowFail: true });
  if (r.code !== 0) return [];
  return JSON.parse(r.stdout || '[]') as Json[];
}

async function hostVeths(host: LabHost): Promise<string[]> {
  return (await ipj(host.name, ['link', 'show', 'type', 'veth'])).map((l) => String(l.ifname)).filter((n) => n.startsWith('vw'));
}

describe('attachments in a lab host', () => {
  let lab: Lab;
  let host: LabHost;
  let stateDir: string;
  let att: Attachments;
  const start = (): Promise<Attachments> =>
    startAttachments({ stateDir, log, netnsPath: host.netnsPath, network: () => ({ subnet: SUBNET, mtu: MTU }) });

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 1, etcd: false });
    host = lab.hosts[0]!;
    stateDir = join(lab.tmpDir, 'state');
    await host.ipBatch(['link add weft0 type bridge', `addr add ${GATEWAY}/24 dev weft0`, 'link set weft0 up']);
    att = await start();
  });
  afterAll(async () => {
    att?.close();
    await lab?.destroy();
  });

  it('attach gives the container eth0 with the address, MTU and default route; it pings the gateway', async () => {
    const c = await host.addContainer('one');
    const a = await att.service.attach({ containerId: 'one', netns: c.netnsPath, name: 'web' });
    expect(a).toMatchObject({ ip: '10.42.7.2/24', gateway: GATEWAY, mtu: MTU, ifname: 'eth0', routes: [{ dst: '0.0.0.0/0', gw: GATEWAY }] });

    const [link] = await ipj(c.name, ['-4', 'addr', 'show', 'dev', 'eth0']);
    expect(link).toMatchObject({ ifname: 'eth0', mtu: MTU });
    expect((await ipj(c.name, ['link', 'show', 'dev', 'eth0']))[0]!.address).toBe(a.mac);
    expect(link!.flags).toContain('UP');
    expect((link!.addr_info as Json[]).map((x) => `${x.local}/${x.prefixlen}`)).toContain('10.42.7.2/24');
    const routes = await ipj(c.name, ['route', 'show', 'default']);
    expect(routes).toMatchObject([{ dst: 'default', gateway: GATEWAY, dev: 'eth0' }]);
    const [hostEnd] = await ipj(host.name, ['link', 'show', 'dev', a.hostIfName]);
    expect(hostEnd).toMatchObject({ master: 'weft0', mtu: MTU });
    expect(hostEnd!.flags).toContain('UP');

    const ping = await c.exec(['ping', '-c', '1', '-W', '2', GATEWAY], { allowFail: true });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    expect(await att.service.check({ containerId: 'one' })).toMatchObject({ ok: true, missing: [] });

    // A retried ADD returns the same attachment; CHECK notices a deleted route.
    expect(await att.service.attach({ containerId: 'one', netns: c.netnsPath, name: 'web' })).toEqual(a);
    await c.exec(['ip', 'route', 'del', 'default']);
    expect((await att.service.check({ containerId: 'one' })).missing).toEqual([`default route via ${GATEWAY} dev eth0`]);
    const again = await att.service.attach({ containerId: 'one', netns: c.netnsPath });
    expect(again.ip).toBe(a.ip);
    expect((await att.service.check({ containerId: 'one' })).ok).toBe(true);
  });

  it('100 parallel attaches get 100 distinct addresses, all plumbed; 100 parallel detaches free them', async () => {
    const containers: LabContainer[] = [];
    for (let i = 0; i < 100; i += 25) {
      containers.push(...(await Promise.all(Array.from({ length: 25 }, () => host.addContainer()))));
    }
    const got = await Promise.all(containers.map((c, i) => att.service.attach({ containerId: `par-${i}`, netns: c.netnsPath })));
    const ips = got.map((a) => a.ip);
    expect(new Set(ips).size).toBe(100);
    expect(ips.filter((ip) => /\.(0|1|255)\/24$/.test(ip))).toEqual([]);
    const onBridge = (await ipj(host.name, ['link', 'show', 'master', 'weft0'])).map((l) => String(l.ifname));
    for (const a of got) expect(onBridge).toContain(a.hostIfName);
    // Spot-check the kernel agrees with what the service said, in a few containers.
    for (const i of [0, 42, 99]) {
      const [l] = await ipj(containers[i]!.name, ['-4', 'addr', 'show', 'dev', 'eth0']);
      expect((l!.addr_info as Json[]).map((x) => `${x.local}/${x.prefixlen}`)).toEqual([got[i]!.ip]);
    }
    await Promise.all(got.map((a) => att.service.detach({ containerId: a.containerId })));
    const left = new Set(await hostVeths(host));
    expect(got.filter((a) => left.has(a.hostIfName))).toEqual([]);
    expect(att.service.list().attachments.filter((a) => a.containerId.startsWith('par-'))).toEqual([]);
    await Promise.all(containers.map((c) => run(['ip', 'netns', 'del', c.name])));
  });

  it('attaching to a namespace that does not exist fails clearly and leaves no veth and no reservation', async () => {
    const before = await hostVeths(host);
    let err: unknown;
    try {
      await att.service.attach({ containerId: 'ghost', netns: '/run/netns/weft-no-such-ns' });
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, 'NOT_FOUND')).toBe(true);
    expect((err as Error).message).toBe('network namespace /run/netns/weft-no-such-ns does not exist');
    expect(await hostVeths(host)).toEqual(before);
    const pool = await AddressPool.open(fileStorage(poolFile(stateDir)));
    expect(pool.get({ containerId: 'ghost', ifname: 'eth0' })).toBeUndefined();
    // A path that exists but is no namespace is refused too.
    await expect(att.service.attach({ containerId: 'ghost', netns: '/etc/hostname' })).rejects.toThrow('/etc/hostname is not a network namespace');
  });

  it('a failure half-way (eth0 already taken in the container) undoes everything', async () => {
    const c = await host.addContainer('busy');
    await c.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const before = await hostVeths(host);
    await expect(att.service.attach({ containerId: 'busy', netns: c.netnsPath })).rejects.toThrow(/attach eth0 in .*File exists/);
    // The caller's choice of name, not the kernel's fault: CONFLICT (409), not KERNEL (500).
    await expect(att.service.attach({ containerId: 'busy', netns: c.netnsPath })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await hostVeths(host)).toEqual(before);
    expect(att.service.list().attachments.find((a) => a.containerId === 'busy')).toBeUndefined();
    const pool = await AddressPool.open(fileStorage(poolFile(stateDir)));
    expect(pool.get({ containerId: 'busy', ifname: 'eth0' })).toBeUndefined();
  });

  it('detaching twice succeeds; detach after the namespace was deleted frees the address', async () => {
    const c1 = await host.addContainer('twice');
    const a1 = await att.service.attach({ containerId: 'twice', netns: c1.netnsPath });
    expect(await att.service.detach({ containerId: 'twice' })).toMatchObject({ released: a1.ip.split('/')[0] });
    expect(await att.service.detach({ containerId: 'twice' })).toEqual({ containerId: 'twice', ifname: 'eth0' });
    expect(await hostVeths(host)).not.toContain(a1.hostIfName);

    const c2 = await host.addContainer('gone');
    const a2 = await att.service.attach({ containerId: 'gone', netns: c2.netnsPath });
    await run(['ip', 'netns', 'del', c2.name]);
    expect(await att.service.detach({ containerId: 'gone' })).toMatchObject({ released: a2.ip.split('/')[0] });
    expect(await hostVeths(host)).not.toContain(a2.hostIfName);
    const pool = await AddressPool.open(fileStorage(poolFile(stateDir)));
    expect(pool.get({ containerId: 'gone', ifname: 'eth0' })).toBeUndefined();
  });

  it('attaches by pid (/proc/PID/ns/net)', async () => {
    const c = await host.addContainer('bypid');
    const sleeper = c.spawn(['sleep', '30']);
    const a = await att.service.attach({ containerId: 'bypid', pid: sleeper.pid });
    expect(a.netns).toBe(`/proc/${sleeper.pid}/ns/net`);
    const [l] = await ipj(c.name, ['-4', 'addr', 'show', 'dev', 'eth0']);
    expect((l!.addr_info as Json[]).map((x) => `${x.local}/${x.prefixlen}`)).toEqual([a.ip]);
    sleeper.kill('SIGKILL');
    await att.service.detach({ containerId: 'bypid' });
  });

  it('a new service on the same state dir (an agent restart) lists the same attachments', async () => {
    const before = att.service.list();
    expect(before.attachments.length).toBeGreaterThan(0);
    att.close();
    att = await start();
    expect(att.service.list()).toEqual(before);
    // And the pool resumes: a new attach does not reuse a held address.
    const c = await host.addContainer('after');
    const a = await att.service.attach({ containerId: 'after', netns: c.netnsPath });
    expect(before.attachments.map((x) => x.ip)).not.toContain(a.ip);
  });

  describe('through the API and the CLI', () => {
    let server: Server;
    let runDir: string;
    beforeAll(async () => {
      runDir = join(lab.tmpDir, 'run');
      server = await startApiServer(socketPathOf(runDir), att.routes, log);
    });
    afterAll(() => server?.close());

    it('weft attach prints the address; weft ps lists it; weft detach frees it; errors map to exit codes', async () => {
      const c = await host.addContainer('cli');
      const up = await weft(host, ['attach', '--netns', c.netnsPath, '--name', 'cli-box', '--run-dir', runDir]);
      expect(up.code, up.stderr).toBe(0);
      expect(up.stdout).toMatch(/^10\.42\.7\.\d+\/24\n$/);
      const ps = await weft(host, ['ps', '--json', '--run-dir', runDir]);
      const list = JSON.parse(ps.stdout) as AttachmentList;
      expect(list.attachments.find((a) => a.containerId === c.name)).toMatchObject({ name: 'cli-box', ip: up.stdout.trim(), stale: false });
      const table = await weft(host, ['ps', '--run-dir', runDir]);
      expect(table.stdout).toMatch(new RegExp(`^CONTAINER-ID +IFNAME +NAME +IP`));
      expect(table.stdout).toContain('cli-box');

      const missing = await weft(host, ['attach', '--netns', '/run/netns/weft-no-such-ns', '--run-dir', runDir]);
      expect(missing.code).toBe(5); // NOT_FOUND → EXIT.HOST
      expect(missing.stderr).toBe('weft: network namespace /run/netns/weft-no-such-ns does not exist\n');
      const usage = await weft(host, ['attach', '--run-dir', runDir]);
      expect(usage.code).toBe(2);

      for (let i = 0; i < 2; i++) {
        const down = await weft(host, ['detach', '--netns', c.netnsPath, '--run-dir', runDir]);
        expect(down.code, down.stderr).toBe(0);
      }
      const after = JSON.parse((await weft(host, ['ps', '--json', '--run-dir', runDir])).stdout) as AttachmentList;
      expect(after.attachments.find((a) => a.containerId === c.name)).toBeUndefined();
    });
  });
});
