// The control plane for real: weft agents in lab hosts against a real etcd.
// Distinct subnets, every agent sees every lease, restarts keep the subnet,
// an etcd outage loses nothing, garbage is skipped, bad config is refused.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRoot, createLab, UNDERLAY_GATEWAY, type Lab } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;


const sorted = (xs: string[]): string[] => [...xs].sort();

describe('three agents on three hosts', () => {
  let lab: Lab;
  const agents: WeftAgent[] = [];
  const agentDir = (i: number): string => join(lab.tmpDir, `agent-h${i}`);

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 3 });
    const h1 = lab.hosts[0]!;
    const set = await weft(h1, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, host] of lab.hosts.entries()) {
      agents.push(await startAgent(host, { dir: agentDir(i + 1), etcd: ETCD, args: ['--iface', 'eth0'] }));
    }
    await Promise.all(agents.map((a) => a.ready()));
  });
  afterAll(async () => lab?.destroy());

  it('get distinct subnets, and each lists all three', async () => {
    const statuses = await Promise.all(agents.map((a) => a.waitFor((s) => s.leases.length === 3, 'three leases')));
    const subnets = statuses.map((s) => s.subnet!);
    expect(new Set(subnets).size).toBe(3);
    for (const [i, s] of statuses.entries()) {
      expect(s.publicIP).toBe(lab.hosts[i]!.ip);
      expect(s.mtu).toBe(1450); // 1500 underlay − 50 VXLAN
      expect(sorted(s.leases.map((l) => l.subnet))).toEqual(sorted(subnets));
      expect(s.leases.find((l) => l.subnet === s.subnet)?.publicIP).toBe(lab.hosts[i]!.ip);
    }
    const list = await weft(lab.hosts[0]!, ['leases', '--json', '--etcd-endpoints', ETCD]);
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as { subnet: string; publicIP: string }[];
    expect(sorted(rows.map((r) => r.subnet))).toEqual(sorted(subnets));
  });

  it('an idle agent does not re-list: the watchdog tells a quiet network from a stuck watch', async () => {
    const before = agents.map((a) => a.proc.stderr.length);
    await new Promise((r) => setTimeout(r, 5000)); // 2.5 watchdog periods (--watch-check-interval 2)
    for (const [i, a] of agents.entries()) expect(a.proc.stderr.slice(before[i])).not.toContain('went quiet');
  });

  it('a second agent on the same --run-dir exits 6 and leaves the first one serving', async () => {
    const second = await startAgent(lab.hosts[0]!, { dir: agentDir(1), etcd: ETCD, args: ['--iface', 'eth0'] });
    expect((await second.proc.exited).code).toBe(6);
    expect(second.proc.stderr).toContain('another weft agent is serving');
    expect((await agents[0]!.status()).ready).toBe(true);
  });

  it('write subnet.env with WEFT_* and FLANNEL_* names', async () => {
    const st = await agents[0]!.status();
    const env = await lab.hosts[0]!.exec(['cat', join(agents[0]!.runDir, 'subnet.env')]);
    const gw = st.subnet!.replace(/\.0\/24$/, '.1/24');
    expect(env.stdout).toContain(`WEFT_NETWORK=10.42.0.0/16\n`);
    expect(env.stdout).toContain(`WEFT_SUBNET=${gw}\n`);
    expect(env.stdout).toContain(`FLANNEL_SUBNET=${gw}\n`);
    expect(env.stdout).toContain(`FLANNEL_MTU=1450\n`);
    expect(env.stdout).toContain(`WEFT_IPMASQ=false\n`);
  });

  it('an agent restarted (SIGTERM, then SIGKILL) keeps its subnet', async () => {
    const before = (await agents[1]!.status()).subnet;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      agents[1]!.proc.kill(signal);
      await agents[1]!.proc.exited;
      if (signal === 'SIGTERM') expect((await agents[1]!.proc.exited).code).toBe(0);
      await agents[1]!.start();
      const after = await agents[1]!.ready();
      expect(after.subnet).toBe(before);
    }
    // etcd holds exactly one lease for that host, not one per incarnation.
    const leases = await lab.etcd.etcdctl(['lease', 'list']);
    expect(leases.stdout).toMatch(/found 3 leases/);
  });

  it('an agent whose state dir was wiped still gets its subnet back by public IP', async () => {
    const before = (await agents[2]!.status()).subnet;
    await agents[2]!.proc.stop();
    await lab.hosts[2]!.exec(['rm', '-rf', agents[2]!.stateDir, agents[2]!.runDir]);
    await agents[2]!.start();
    expect((await agents[2]!.ready()).subnet).toBe(before);
  });

  it('skips a garbage value under subnets/ and keeps every other lease', async () => {
    await lab.etcd.etcdctl(['put', '/weft/network/subnets/10.42.250.0-24', '{"PublicIP": nope']);
    await lab.etcd.etcdctl(['put', '/weft/network/subnets/not-a-subnet', '{"PublicIP":"198.18.0.99"}']);
    // A new lease after the garbage proves the watch survived it.
    await lab.etcd.etcdctl(['put', '/weft/network/subnets/10.42.251.0-24', '{"PublicIP":"198.18.0.99","BackendType":"vxlan","BackendData":{}}']);
    for (const a of agents) {
      const st = await a.waitFor((s) => s.leases.some((l) => l.subnet === '10.42.251.0/24'), 'the lease after the garbage');
      expect(st.leases).toHaveLength(4);
      expect(a.proc.running).toBe(true);
    }
    expect(agents[0]!.proc.stderr).toContain('/weft/network/subnets/10.42.250.0-24');
    const list = await weft(lab.hosts[0]!, ['leases', '--etcd-endpoints', ETCD]);
    expect(list.code).toBe(0);
    expect(list.stderr).toMatch(/warning: skipping \/weft\/network\/subnets\/10\.42\.250\.0-24/);
    expect(list.stderr).toMatch(/warning: skipping \/weft\/network\/subnets\/not-a-subnet/);
    expect(list.stdout).toContain('10.42.251.0/24');
    await lab.etcd.etcdctl(['del', '--prefix', '/weft/network/subnets/10.42.25']);
    await lab.etcd.etcdctl(['del', '/weft/network/subnets/not-a-subnet']);
    for (const a of agents) await a.waitFor((s) => s.leases.length === 3, 'back to three leases');
  });

  it('survive etcd stopped for 10 s; a host that joins during the outage is seen by all afterwards', async () => {
    const before = await Promise.all(agents.map((a) => a.status()));
    await lab.etcd.stop();
    const h4 = await lab.addHost();
    const a4 = await startAgent(h4, { dir: agentDir(4), etcd: ETCD, args: ['--iface', 'eth0'] });
    await new Promise((r) => setTimeout(r, 10_000));
    for (const a of agents) expect(a.proc.running).toBe(true);
    expect(a4.proc.running).toBe(true);
    expect((await a4.status()).ready).toBe(false);
    await lab.etcd.start();
    const st4 = await a4.ready(30_000);
    agents.push(a4);
    for (const [i, a] of agents.entries()) {
      const st = await a.waitFor((s) => s.leases.length === 4, 'four leases', 30_000);
      expect(st.leases.map((l) => l.subnet)).toContain(st4.subnet);
      if (i < 3) {
        expect(st.subnet).toBe(before[i]!.subnet);
        expect(st.leaseId).toBe(before[i]!.leaseId);
      }
    }
  }, 90_000);

  it('`weft leave` gives the subnet back after the agent stopped; SIGTERM alone keeps it', async () => {
    const a = agents[3]!;
    const { subnet } = await a.status();
    await a.proc.stop();
    // SIGTERM kept it:
    expect((await agents[0]!.status()).leases.map((l) => l.subnet)).toContain(subnet);
    const leave = await weft(a.host, ['leave', '--iface', 'eth0', '--etcd-endpoints', ETCD]);
    expect(leave.code, leave.stderr).toBe(0);
    expect(leave.stderr).toContain(`released ${subnet}`);
    for (const other of agents.slice(0, 3)) await other.waitFor((s) => !s.leases.some((l) => l.subnet === subnet), 'the released lease to go');
    const again = await weft(a.host, ['leave', '--iface', 'eth0', '--etcd-endpoints', ETCD]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('nothing to release');
  });
});

describe('network config', () => {
  let lab: Lab;
  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 1 });
  });
  afterAll(async () => lab?.destroy());

  it('`weft config set` refuses an invalid config, names the field, and writes nothing', async () => {
    const h = lab.hosts[0]!;
    const r = await weft(h, ['config', 'set', '{"Network":"10.42.0.0/16","SubnetLen":31}', '--etcd-endpoints', ETCD]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/SubnetLen/);
    const show = await weft(h, ['config', 'show', '--etcd-endpoints', ETCD]);
    expect(show.code).not.toBe(0);
    expect(show.stderr).toMatch(/no network config/);
  });

  it('`weft agent` against an invalid config in etcd exits 3 with a message naming the field', async () => {
    const h = lab.hosts[0]!;
    await lab.etcd.etcdctl(['put', '/bad/network/config', '{"Network":"10.42.0.0/16","Backend":{"Type":"host-gw"}}']);
    const agent = await startAgent(h, { dir: join(lab.tmpDir, 'bad'), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', '/bad/network'] });
    const exit = await agent.proc.exited;
    expect(exit.code).toBe(3);
    expect(agent.proc.stderr).toMatch(/Backend\.Type/);
    expect(agent.proc.stderr).toMatch(/\/bad\/network\/config/);
  });

  it('reads an existing flannel network unchanged with --etcd-prefix /coreos.com/network', async () => {
    const h = lab.hosts[0]!;
    await lab.etcd.etcdctl(['put', '/coreos.com/network/config', '{"Network": "10.5.0.0/16", "SubnetLen": 26, "Backend": {"Type": "vxlan", "VNI": 4, "Port": 4789}}']);
    const agent = await startAgent(h, { dir: join(lab.tmpDir, 'flannel'), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', '/coreos.com/network'] });
    const st = await agent.ready();
    expect(st.network).toBe('10.5.0.0/16');
    expect(st.subnet).toMatch(/^10\.5\.\d+\.\d+\/26$/);
    const keys = await lab.etcd.etcdctl(['get', '--prefix', '--keys-only', '/coreos.com/network/subnets/']);
    expect(keys.stdout).toContain(`/coreos.com/network/subnets/${st.subnet!.replace('/', '-')}`);
    const show = await weft(h, ['config', 'show', '--etcd-prefix', '/coreos.com/network', '--etcd-endpoints', ETCD]);
    expect(JSON.parse(show.stdout)).toMatchObject({ Network: '10.5.0.0/16', SubnetLen: 26, Backend: { Type: 'vxlan', VNI: 4, Port: 4789 } });
    await agent.proc.stop();
  });

  it('/readyz answers 503 naming what it waits for until the lease is held, then 200; /healthz 200 throughout', async () => {
    const h = lab.hosts[0]!;
    const get = async (path: string): Promise<{ status: number; body: string }> => {
      const js = `fetch('http://127.0.0.1:8471${path}').then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), (e) => console.log(JSON.stringify({ status: 0, body: String(e) })))`;
      return JSON.parse((await h.exec([process.execPath, '-e', js])).stdout) as { status: number; body: string };
    };
    const agent = await startAgent(h, { dir: join(lab.tmpDir, 'health'), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', '/health/network', '--healthz-listen', '127.0.0.1:8471'] });
    await agent.waitFor((s) => s.waitingFor.includes('subnet lease'), 'the agent to wait for its config');
    const waiting = await get('/readyz');
    expect(waiting.status).toBe(503);
    expect(JSON.parse(waiting.body)).toMatchObject({ ready: false, waitingFor: expect.arrayContaining(['subnet lease']) });
    expect((await get('/healthz')).status).toBe(200);
    await lab.etcd.etcdctl(['put', '/health/network/config', '{"Network":"10.77.0.0/16"}']);
    await agent.ready(30_000);
    expect(await get('/readyz')).toMatchObject({ status: 200 });
    expect((await get('/nope')).status).toBe(404);
    await agent.proc.stop();
  });

  it('--release-on-exit gives the subnet back on SIGTERM', async () => {
    const h = lab.hosts[0]!;
    await lab.etcd.etcdctl(['put', '/rel/network/config', '{"Network":"10.88.0.0/16"}']);
    const agent = await startAgent(h, { dir: join(lab.tmpDir, 'rel'), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', '/rel/network', '--release-on-exit'] });
    const { subnet } = await agent.ready();
    const key = `/rel/network/subnets/${subnet!.replace('/', '-')}`;
    expect((await lab.etcd.etcdctl(['get', '--keys-only', key])).stdout).toContain(key);
    await agent.proc.stop();
    expect((await lab.etcd.etcdctl(['get', '--keys-only', '--prefix', '/rel/network/subnets/'])).stdout.trim()).toBe('');
  });

  it('a sealed udp network with a --key-file that holds no key makes the agent exit 2 naming the file, before it takes a subnet', async () => {
    const h = lab.hosts[0]!;
    await lab.etcd.etcdctl(['put', '/udp/network/config', '{"Network":"10.89.0.0/16","Backend":{"Type":"udp","Encrypt":true}}']);
    const keyFile = join(lab.tmpDir, 'bad.key');
    await writeFile(keyFile, 'not a key\n');
    const agent = await startAgent(h, { dir: join(lab.tmpDir, 'udp'), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', '/udp/network', '--key-file', keyFile] });
    expect((await agent.proc.exited).code).toBe(2);
    expect(agent.proc.stderr).toContain(`--key-file ${keyFile}, line 1`);
    // It took no subnet.
    expect((await lab.etcd.etcdctl(['get', '--keys-only', '--prefix', '/udp/network/subnets/'])).stdout.trim()).toBe('');
  });

  it('`weft agent` with a bad flag exits 2 naming it, and changes nothing', async () => {
    const r = await weft(lab.hosts[0]!, ['agent', '--lease-ttl', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--lease-ttl');
  });
});
