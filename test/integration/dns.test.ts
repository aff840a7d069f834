// Gossip DNS through real agents, real etcd and real `dig` in lab containers:
// a name attached on one host resolves from containers on every host; detach
// gives NXDOMAIN; one name on two containers answers both, rotating; PTR of an
// overlay address; outside names go to a fake upstream (dnsmasq in the lab's
// underlay) and get SERVFAIL when it is down; the underlay is refused; names
// keep resolving and propagating while etcd is frozen (SIGSTOP); a SIGKILLed
// host's records leave the others' answers and come back when it restarts;
// 10 000 random and mutated datagrams leave the server answering.
// Waits poll; no timing is asserted (the propagation figures are in
// test/bench/dns.bench.ts).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../agent/api/client.js';
import { assertRoot, createLab, dig, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabProcess } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';
import { execRunner, installRelay, WeftPlugin } from './support/cni.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
const WAIT = 15_000;

describe('gossip DNS across three hosts', () => {
  let lab: Lab;
  const agents: WeftAgent[] = [];
  const clients: LabContainer[] = [];
  const gateways: string[] = [];
  let upstream: LabProcess;

  const startUpstream = (): LabProcess =>
    lab.underlay.spawn(['dnsmasq', '-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root', `--listen-address=${UNDERLAY_GATEWAY}`, '--bind-interfaces', '--port=53', '--address=/outside.example/192.0.2.99', '--pid-file=']);

  async function attach(host: number, name?: string): Promise<{ c: LabContainer; ip: string }> {
    const c = await lab.hosts[host]!.addContainer(name ?? 'x');
    const r = await weft(lab.hosts[host]!, ['attach', '--netns', c.netnsPath, '--run-dir', agents[host]!.runDir, ...(name ? ['--name', name] : [])]);
    expect(r.code, r.stderr).toBe(0);
    return { c, ip: r.stdout.trim().split('/')[0]! };
  }

  async function detach(host: number, c: LabContainer): Promise<void> {
    const r = await weft(lab.hosts[host]!, ['detach', '--netns', c.netnsPath, '--run-dir', agents[host]!.runDir]);
    expect(r.code, r.stderr).toBe(0);
  }

  /** Polls dig from host i's client until `ok`; returns the last answer. */
  const resolveFrom = (i: number, name: string, ok: (answers: string[], status: string) => boolean, type = 'A') =>
    pollUntil(() => dig(clients[i]!, gateways[i]!, name, type), (r) => ok(r.answers, r.status), WAIT, 100);

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 3 });
    upstream = startUpstream();
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, host] of lab.hosts.entries()) {
      agents.push(await startAgent(host, { dir: join(lab.tmpDir, `agent-${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0', '--dns-upstream', `${UNDERLAY_GATEWAY}:53`, '--dns-upstream-timeout', '500'] }));
    }
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 3 && ((s as { dns?: { listening: string[] } }).dns?.listening.length ?? 0) > 0, 'ready, three leases, DNS listening')));
    for (let i = 0; i < 3; i++) {
      const { c } = await attach(i, `client-${i + 1}`);
      clients.push(c);
      gateways.push(((await agents[i]!.status()).subnet ?? '').replace(/0\/24$/, '1'));
    }
  });
  afterAll(async () => lab?.destroy());

  it('a container attached with --name on one host resolves from containers on every host, by full name and through the search domain', async () => {
    const web = await attach(1, 'web');
    for (const i of [0, 1, 2]) {
      const r = await resolveFrom(i, 'web.weft.local', (a) => a.length === 1);
      expect(r.answers, `from host ${i + 1}: ${r.raw}`).toEqual([web.ip]);
      expect(r.flags).toContain('aa');
    }
    const conf = await clients[0]!.exec(['cat', '/etc/resolv.conf']);
    expect(conf.stdout).toContain(`nameserver ${gateways[0]}`);
    expect(conf.stdout).toContain('search weft.local');
    const short = await clients[0]!.exec(['dig', '+search', '+short', '+tries=1', '+time=1', 'web']);
    expect(short.stdout.trim()).toBe(web.ip);
    // The demo's claim: reach a container on another host by its name.
    const ping = await clients[0]!.exec(['ping', '-c', '1', '-W', '2', 'web'], { allowFail: true });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const ls = await weft(lab.hosts[0]!, ['dns', 'ls', '--json', '--run-dir', agents[0]!.runDir]);
    const records = (JSON.parse(ls.stdout) as { records: { name: string; owner: string; version: number }[] }).records;
    expect(records.find((r) => r.name === 'web')).toMatchObject({ owner: lab.hosts[1]!.ip });
    const status = await weft(lab.hosts[0]!, ['status', '--run-dir', agents[0]!.runDir]);
    expect(status.stdout).toMatch(new RegExp(`DNS +on ${gateways[0]!.replace(/\./g, '\\.')}:53, weft\\.local\\. \\d+ names`));
  });

  it('two containers under one name answer both addresses, in rotating order; PTR names an overlay address', async () => {
    const a = await attach(0, 'svc');
    const b = await attach(2, 'svc');
    const r = await resolveFrom(1, 'svc.weft.local', (ans) => ans.length === 2);
    expect([...r.answers].sort()).toEqual([a.ip, b.ip].sort());
    const firsts = new Set<string>();
    for (let k = 0; k < 4; k++) firsts.add((await dig(clients[1]!, gateways[1]!, 'svc.weft.local')).answers[0]!);
    expect(firsts.size).toBe(2);
    const ptr = await resolveFrom(0, b.ip.split('.').reverse().join('.') + '.in-addr.arpa', (ans) => ans.length > 0, 'PTR');
    expect(ptr.answers).toEqual(['svc.weft.local.']);
    const srv = await dig(clients[0]!, gateways[0]!, '_http._tcp.svc.weft.local', 'SRV');
    expect(srv.answers).toHaveLength(2);
  });

  it('weft dns add/rm by hand; an answer too big for UDP comes back truncated and dig gets it whole over TCP', async () => {
    const add = await weft(lab.hosts[0]!, ['dns', 'add', 'many', '10.99.0.1', '--run-dir', agents[0]!.runDir]);
    expect(add.code, add.stderr).toBe(0);
    for (let i = 2; i <= 40; i++) await callAgent(agents[0]!.runDir, 'POST', '/v1/dns/add', { name: 'many', ip: `10.99.0.${i}` });
    const bad = await weft(lab.hosts[0]!, ['dns', 'add', 'many', 'not-an-ip', '--run-dir', agents[0]!.runDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not an IPv4 or IPv6 address/);
    const tcp = await pollUntil(() => dig(clients[1]!, gateways[1]!, 'many.weft.local', 'A', ['+noedns']), (r) => r.answers.length === 40, WAIT, 200);
    expect(tcp.answers).toHaveLength(40);
    expect(tcp.raw).toMatch(/Truncated, retrying in TCP mode/);
    const rm = await weft(lab.hosts[0]!, ['dns', 'rm', 'many', '--run-dir', agents[0]!.runDir]);
    expect(rm.code, rm.stderr).toBe(0);
    const gone = await resolveFrom(1, 'many.weft.local', (_a, st) => st === 'NXDOMAIN');
    expect(gone.status).toBe('NXDOMAIN');
  });

  it('a pod attached through the CNI relay gets the DNS server in its result, is named pod.namespace and pod, and leaves with DEL', async () => {
    const bin = join(lab.tmpDir, 'cni-bin');
    await installRelay(bin);
    const plugin = new WeftPlugin(lab.hosts[0]!, bin, execRunner(lab.hosts[0]!), agents[0]!.runDir, '');
    const pod = await lab.hosts[0]!.addContainer('pod');
    const call = (command: 'ADD' | 'DEL') =>
      plugin.call({ command, containerId: 'pod-api-1', netns: pod.netnsPath, ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=api-7d9;K8S_POD_UID=1', config: plugin.config('1.0.0') });
    const add = await call('ADD');
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const result = JSON.parse(add.stdout) as { ips: { address: string }[]; dns: { nameservers: string[]; search: string[] } };
    expect(result.dns.nameservers).toEqual([gateways[0]]);
    expect(result.dns.search).toEqual(['weft.local']);
    const ip = result.ips[0]!.address.split('/')[0]!;
    for (const name of ['api-7d9.prod.weft.local', 'api-7d9.weft.local']) {
      expect((await resolveFrom(2, name, (a) => a.length === 1)).answers, name).toEqual([ip]);
    }
    expect((await dig(clients[2]!, gateways[2]!, 'prod.weft.local')).status).toBe('NOERROR');
    const del = await call('DEL');
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect((await resolveFrom(2, 'api-7d9.prod.weft.local', (_a, st) => st === 'NXDOMAIN')).status).toBe('NXDOMAIN');
  });

  it('detach gives NXDOMAIN on every host', async () => {
    const gone = await attach(2, 'gone');
    expect((await resolveFrom(0, 'gone.weft.local', (a) => a.length === 1)).answers).toEqual([gone.ip]);
    await detach(2, gone.c);
    for (const i of [0, 1, 2]) {
      const r = await resolveFrom(i, 'gone.weft.local', (_a, s) => s === 'NXDOMAIN');
      expect(r.status, r.raw).toBe('NXDOMAIN');
    }
    expect((await dig(clients[0]!, gateways[0]!, 'client-1.weft.local', 'AAAA')).status).toBe('NOERROR');
  });

  it('forwards outside names to the upstream, SERVFAIL when it is down, and refuses the underlay', async () => {
    const ok = await dig(clients[0]!, gateways[0]!, 'outside.example');
    expect(ok.answers, ok.raw).toEqual(['192.0.2.99']);
    // The underlay reaching host 1's gateway (a route in the lab's own underlay namespace): never an open resolver.
    await lab.runInUnderlay(['ip', 'route', 'replace', `${gateways[0]}/32`, 'via', lab.hosts[0]!.ip]);
    const fromUnderlay = await dig(lab.underlay, gateways[0]!, 'outside.example');
    expect(fromUnderlay.status, fromUnderlay.raw).toBe('REFUSED');
    await upstream.stop();
    const down = await dig(clients[0]!, gateways[0]!, 'outside.example');
    expect(down.status, down.raw).toBe('SERVFAIL');
    upstream = startUpstream();
    const back = await pollUntil(() => dig(clients[0]!, gateways[0]!, 'outside.example'), (r) => r.answers.length === 1, WAIT, 200);
    expect(back.answers).toEqual(['192.0.2.99']);
  });

  it('while etcd is frozen, names still resolve and a new attach still propagates', async () => {
    process.kill(lab.etcd.pid, 'SIGSTOP');
    try {
      expect((await dig(clients[2]!, gateways[2]!, 'web.weft.local')).answers).toHaveLength(1);
      const late = await attach(0, 'late');
      const r = await resolveFrom(2, 'late.weft.local', (a) => a.length === 1);
      expect(r.answers).toEqual([late.ip]);
    } finally {
      process.kill(lab.etcd.pid, 'SIGCONT');
    }
  });

  it("a SIGKILLed host's records leave the other hosts' answers, and come back when it restarts", async () => {
    await resolveFrom(0, 'client-3.weft.local', (a) => a.length === 1);
    agents[2]!.proc.kill('SIGKILL');
    await agents[2]!.proc.exited;
    for (const i of [0, 1]) {
      const r = await pollUntil(() => dig(clients[i]!, gateways[i]!, 'client-3.weft.local'), (x) => x.status === 'NXDOMAIN', 30_000, 250);
      expect(r.status, `host ${i + 1}`).toBe('NXDOMAIN');
    }
    // svc keeps its host-1 address only.
    expect((await dig(clients[1]!, gateways[1]!, 'svc.weft.local')).answers).toHaveLength(1);
    await agents[2]!.start();
    for (const i of [0, 1]) {
      const r = await pollUntil(() => dig(clients[i]!, gateways[i]!, 'client-3.weft.local'), (x) => x.answers.length === 1, 30_000, 250);
      expect(r.answers, `host ${i + 1}`).toHaveLength(1);
    }
  });

  it('10 000 random and mutated datagrams to the DNS port leave it answering correctly', async () => {
    const script = join(lab.tmpDir, 'dns-fuzz.cjs');
    await writeFile(
      script,
      `const dgram = require('dgram');
const s = dgram.createSocket('udp4');
let seed = 4242; const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const base = Buffer.from('${'abcd01000001000000000001037765620477656674056c6f63616c0000010001000029100000000000000000'}', 'hex');
let i = 0;
function burst() {
  for (let k = 0; k < 25 && i < 10000; k++, i++) {
    let b;
    if (i % 2 === 0) b = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)));
    else { b = Buffer.from(base); for (let m = 0; m < 1 + (i % 4); m++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256); }
    s.send(b, 53, process.argv[2]);
  }
  if (i < 10000) setTimeout(burst, 3); else setTimeout(() => s.close(), 200);
}
burst();
`,
    );
    const before = (await agents[0]!.status()) as { dns?: { queries?: { queries: number } } };
    const r = await clients[0]!.exec([process.execPath, script, gateways[0]!], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const after = (await agents[0]!.status()) as { dns?: { queries?: { queries: number } } };
    // Most reach it (a loaded 2-core machine drops some at the socket); each one reached is handled.
    expect((after.dns?.queries?.queries ?? 0) - (before.dns?.queries?.queries ?? 0)).toBeGreaterThan(2000);
    const web = await dig(clients[0]!, gateways[0]!, 'web.weft.local');
    expect(web.answers).toHaveLength(1);
    expect(agents[0]!.proc.running).toBe(true);
  });
});
