// The data plane through real agents: containers attached with `weft attach`
// on different lab hosts reach each other through kernel VXLAN; a lease that
// leaves etcd takes its kernel objects away everywhere (after --lease-grace),
// while a key deleted by hand and re-created by its owner costs no packet; a route deleted by
// hand comes back; an agent SIGKILLed and restarted drops no packet;
// --ip-masq masquerades traffic leaving the overlay and nothing inside it.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../agent/api/client.js';
import type { Attachment, AttachmentList } from '../../agent/api/types.js';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabHost } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';
import { MASQ_TABLE } from '../../encap/masquerade.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

async function attach(agent: WeftAgent, c: LabContainer): Promise<string> {
  const r = await weft(agent.host, ['attach', '--netns', c.netnsPath, '--run-dir', agent.runDir]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim()).toMatch(/^10\.42\.\d+\.\d+\/24$/);
  return r.stdout.trim().split('/')[0]!;
}

async function kernelObjects(host: LabHost, subnet: string): Promise<{ route: boolean; neigh: boolean; fdb: number }> {
  const net = subnet.split('/')[0]!;
  const [route, neigh, fdb] = await Promise.all([
    host.exec(['ip', '-j', 'route', 'show', subnet]),
    host.exec(['ip', '-j', 'neigh', 'show', 'dev', 'weft.1']),
    host.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'weft.1']),
  ]);
  const neighs = JSON.parse(neigh.stdout || '[]') as { dst: string; lladdr: string }[];
  const mac = neighs.find((n) => n.dst === net)?.lladdr;
  const fdbs = JSON.parse(fdb.stdout || '[]') as { mac: string }[];
  return { route: (JSON.parse(route.stdout || '[]') as unknown[]).length > 0, neigh: mac !== undefined, fdb: mac ? fdbs.filter((f) => f.mac === mac).length : 0 };
}

describe('data plane through real agents', () => {
  let lab: Lab;
  const agents: WeftAgent[] = [];
  const containers: LabContainer[] = [];
  const ips: string[] = [];

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 3 });
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, host] of lab.hosts.entries()) {
      agents.push(await startAgent(host, { dir: join(lab.tmpDir, `agent-${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0', '--resync-interval', '2'] }));
    }
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 3, 'ready with three leases')));
    for (const [i, a] of agents.entries()) {
      const c = await lab.hosts[i]!.addContainer(`c${i + 1}`);
      containers.push(c);
      ips.push(await attach(a, c));
    }
  });
  afterAll(async () => lab?.destroy());

  it('containers on different hosts ping each other both ways', async () => {
    for (const [from, to] of [[0, 1], [1, 0], [0, 2], [2, 1]] as const) {
      const r = await containers[from]!.exec(['ping', '-c', '2', '-W', '2', ips[to]!], { allowFail: true });
      expect(r.code, `${from + 1} -> ${to + 1}: ${r.stdout}`).toBe(0);
    }
  });

  it('a container has the overlay MTU, a default route via its gateway, and the agent lists it', async () => {
    const link = JSON.parse((await containers[0]!.exec(['ip', '-j', 'link', 'show', 'eth0'])).stdout) as { mtu: number }[];
    expect(link[0]!.mtu).toBe(1450);
    const route = await containers[0]!.exec(['ip', 'route', 'show', 'default']);
    expect(route.stdout).toMatch(/^default via 10\.42\.\d+\.1 dev eth0/);
    const list = await callAgent<AttachmentList>(agents[0]!.runDir, 'GET', '/v1/attachments');
    expect(list.attachments.map((a) => a.ip.split('/')[0])).toEqual([ips[0]]);
  });

  it('a route deleted by hand comes back within the resync period', async () => {
    const subnetB = (await agents[1]!.status()).subnet!;
    await lab.hosts[0]!.exec(['ip', 'route', 'del', subnetB]);
    expect((await kernelObjects(lab.hosts[0]!, subnetB)).route).toBe(false);
    const healed = await pollUntil(() => kernelObjects(lab.hosts[0]!, subnetB), (o) => o.route, 15_000, 200);
    expect(healed).toEqual({ route: true, neigh: true, fdb: 1 });
    expect((await containers[0]!.exec(['ping', '-c', '1', '-W', '2', ips[1]!], { allowFail: true })).code).toBe(0);
  });

  it('SIGKILL and restart of an agent during a ping between its container and another host loses no packet', async () => {
    const count = 120; // 6 s at 0.05 s
    const ping = containers[0]!.exec(['ping', '-i', '0.05', '-c', String(count), '-W', '1', ips[1]!], { allowFail: true, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1000));
    agents[0]!.proc.kill('SIGKILL');
    await agents[0]!.proc.exited;
    await agents[0]!.start();
    await agents[0]!.ready();
    const r = await ping;
    expect(r.stdout).toMatch(new RegExp(`${count} packets transmitted, ${count} received, 0% packet loss`));
    // The attachment survived the restart too.
    const list = await callAgent<AttachmentList>(agents[0]!.runDir, 'GET', '/v1/attachments');
    expect(list.attachments).toHaveLength(1);
  }, 60_000);

  it('`etcdctl del` of a host\'s key during a ping to it loses no packet: peers keep it for --lease-grace while its owner re-creates it', async () => {
    const b = agents[1]!;
    const before = await b.status();
    const count = 80; // 4 s at 0.05 s
    const ping = containers[0]!.exec(['ping', '-i', '0.05', '-c', String(count), '-W', '1', ips[1]!], { allowFail: true, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const key = `/weft/network/subnets/${before.subnet!.replace('/', '-')}`;
    expect((await lab.etcd.etcdctl(['del', key])).stdout.trim()).toBe('1');
    const r = await ping;
    expect(r.stdout).toMatch(new RegExp(`${count} packets transmitted, ${count} received, 0% packet loss`));
    const after = await b.waitFor((s) => s.leaseId !== before.leaseId && s.leases.some((l) => l.subnet === before.subnet), 'the owner to re-create its key');
    expect(after.subnet).toBe(before.subnet);
  }, 60_000);

  it('a lease removed from etcd takes its route, neighbour and FDB entry away on every host', async () => {
    const c = agents[2]!;
    const subnetC = (await c.status()).subnet!;
    for (const h of [lab.hosts[0]!, lab.hosts[1]!]) expect(await kernelObjects(h, subnetC)).toEqual({ route: true, neigh: true, fdb: 1 });
    await c.proc.stop(); // SIGTERM keeps the lease; leave removes it
    const leave = await weft(c.host, ['leave', '--iface', 'eth0', '--etcd-endpoints', ETCD]);
    expect(leave.code, leave.stderr).toBe(0);
    for (const a of agents.slice(0, 2)) await a.waitFor((s) => s.leases.length === 2, 'the lease to go');
    for (const h of [lab.hosts[0]!, lab.hosts[1]!]) {
      const objs = await pollUntil(() => kernelObjects(h, subnetC), (o) => !o.route && !o.neigh && o.fdb === 0, 10_000);
      expect(objs).toEqual({ route: false, neigh: false, fdb: 0 });
    }
  });

  it('100 parallel attaches through the agent API get 100 distinct addresses', async () => {
    const host = lab.hosts[1]!;
    const cs = await Promise.all(Array.from({ length: 100 }, (_, i) => host.addContainer(`p${i}`)));
    const results = await Promise.all(
      cs.map((c, i) => callAgent<Attachment>(agents[1]!.runDir, 'POST', '/v1/attach', { containerId: `par-${i}`, netns: c.netnsPath }, 30_000)),
    );
    expect(new Set(results.map((r) => r.ip)).size).toBe(100);
    const bridged = await host.exec(['ip', '-o', 'link', 'show', 'master', 'weft0']);
    expect(bridged.stdout.trim().split('\n').length).toBe(101); // plus the first test's container
    await Promise.all(results.map((r) => callAgent(agents[1]!.runDir, 'POST', '/v1/detach', { containerId: r.containerId }, 30_000)));
  }, 90_000);
});

describe('--ip-masq', () => {
  let lab: Lab;
  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 2 });
    await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16"}', '--etcd-endpoints', ETCD]);
  });
  afterAll(async () => lab?.destroy());

  it('masquerades traffic leaving the overlay to the host address, and never traffic inside it', async () => {
    const agents = await Promise.all(
      lab.hosts.map((h, i) => startAgent(h, { dir: join(lab.tmpDir, `m${i}`), etcd: ETCD, args: ['--iface', 'eth0', '--ip-masq', '--resync-interval', '1'] })),
    );
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready')));
    const [ca, cb] = await Promise.all([lab.hosts[0]!.addContainer('ma'), lab.hosts[1]!.addContainer('mb')]);
    const ipA = await attach(agents[0]!, ca);
    const ipB = await attach(agents[1]!, cb);
    // A server that answers with the source address it sees.
    const echo = `require('net').createServer((s) => s.end(s.remoteAddress)).listen(9999, process.argv[1])`;
    const outside = lab.underlay.spawn([process.execPath, '-e', echo, UNDERLAY_GATEWAY]);
    const inside = cb.spawn([process.execPath, '-e', echo, ipB]);
    const ask = (addr: string) =>
      ca.exec([process.execPath, '-e', `require('net').connect(9999, process.argv[1]).on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.error(e.message); process.exit(1); })`, addr], { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500));
    expect((await ask(UNDERLAY_GATEWAY)).stdout).toBe(lab.hosts[0]!.ip); // leaves the overlay: the host's address
    expect((await ask(ipB)).stdout).toBe(ipA); // stays inside: the container's own
    outside.kill();
    inside.kill();
    const env = await lab.hosts[0]!.exec(['cat', join(agents[0]!.runDir, 'subnet.env')]);
    expect(env.stdout).toContain('WEFT_IPMASQ=true');

    // Reconciled like routes: a hand-deleted table, and a hand-flushed chain, come back at the next resync.
    const h = lab.hosts[0]!;
    const listed = () => h.exec(['nft', 'list', 'table', 'ip', MASQ_TABLE], { allowFail: true });
    await h.exec(['nft', 'delete', 'table', 'ip', MASQ_TABLE]);
    expect((await listed()).code).not.toBe(0);
    let back = await pollUntil(listed, (r) => r.code === 0, 15_000);
    expect(back.stdout).toContain('masquerade fully-random');
    await h.exec(['nft', 'flush', 'chain', 'ip', MASQ_TABLE, 'postrouting']);
    back = await pollUntil(listed, (r) => r.stdout.includes('masquerade fully-random'), 15_000);
    expect(back.stdout).toContain('masquerade fully-random');
    expect(back.stdout.match(/masquerade/g)).toHaveLength(1);
    await Promise.all(agents.map((a) => a.proc.stop()));
  });
});

describe('weft agent --install-cni', () => {
  let lab: Lab;
  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 1 });
  });
  afterAll(async () => lab?.destroy());

  it('installs the plugin and the conflist only once the agent is ready', async () => {
    const h = lab.hosts[0]!;
    const binDir = join(lab.tmpDir, 'cni-bin');
    const confDir = join(lab.tmpDir, 'cni-conf');
    const agent = await startAgent(h, {
      dir: join(lab.tmpDir, 'a'),
      etcd: ETCD,
      args: ['--iface', 'eth0', '--install-cni', '--cni-bin-dir', binDir, '--cni-conf-dir', confDir, '--etcd-prefix', '/cni/network'],
    });
    // No network config yet: not ready, so nothing may be installed.
    await agent.waitFor((s) => s.waitingFor.includes('subnet lease'), 'the agent to wait for its config');
    expect((await h.exec(['ls', '-A', confDir], { allowFail: true })).stdout.trim()).toBe('');
    await lab.etcd.etcdctl(['put', '/cni/network/config', '{"Network":"10.66.0.0/16"}']);
    await agent.ready();
    await pollUntil(() => h.exec(['test', '-f', join(confDir, '10-weft.conflist')], { allowFail: true }), (r) => r.code === 0, 10_000);
    const conf = JSON.parse((await h.exec(['cat', join(confDir, '10-weft.conflist')])).stdout) as { name: string; cniVersion: string; cniVersions: string[]; plugins: { type: string; runDir: string }[] };
    expect(conf.name).toBe('weft');
    // What podman 4.3 and containerd 1.6 accept; newer libcni picks 1.1.0 from the list.
    expect([conf.cniVersion, conf.cniVersions]).toEqual(['1.0.0', ['1.0.0', '1.1.0']]);
    expect(conf.plugins[0]).toEqual({ type: 'weft', runDir: agent.runDir, capabilities: { ips: true, mac: true } });
    // The installed plugin is the relay and reaches this agent: VERSION needs none, STATUS does.
    const status = await h.exec([join(binDir, 'weft')], { input: JSON.stringify({ cniVersion: '1.1.0', name: 'weft', type: 'weft', runDir: agent.runDir }), env: { CNI_COMMAND: 'STATUS', CNI_PATH: binDir }, allowFail: true });
    expect(status.code, status.stdout).toBe(0);
    await agent.proc.stop();
  });
});
