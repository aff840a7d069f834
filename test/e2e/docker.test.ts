// A real Docker: Debian's dockerd 20.10 in two lab hosts, each with its own
// weft agent serving the Docker plugin. `docker network create -d weft
// --ipam-driver weft net1` on both hosts makes one overlay: containers on the
// two hosts reach each other, and reach `weft attach` and CNI containers; a
// SIGKILLed and restarted agent loses no packet of a running ping and still
// cleans up afterwards; `docker rm -f` and `docker network rm` leave no veth,
// no reservation, no endpoint record; `-p 8080:80` answers from the other
// host; a dockerd restart (live-restore off) leaves no attachment; names
// resolve across hosts (Docker → Docker, Docker ↔ `weft attach` and CNI
// containers) through Docker's embedded DNS and weft's; the plugin
// socket answers malformed JSON with an Err reply.
//
// The agents run in their host's holder, as dockerd does, because they open
// Docker's sandbox namespaces under dockerd's exec-root. Each dockerd finds
// its agent through its own spec file (see test/lab/docker.ts).
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolFile, type PoolState } from '../../ipam/address-pool.js';
import { callAgent } from '../../agent/api/client.js';
import type { AttachmentList } from '../../agent/api/types.js';
import { endpointsFile } from '../../agent/cnm/endpoint-store.js';
import { assertRoot, createLab, UNDERLAY_GATEWAY, type Lab, type LabHost } from '../lab/index.js';
import { cleanupDockerLeftovers, DockerHost, DOCKER_IMAGE, ensureDocker, removePluginSpec, writePluginSpec } from '../lab/docker.js';
import { busyboxTarball, ensurePodman } from '../lab/podman.js';
import { pollUntil } from '../lab/poll.js';
import { assertBuilt, repoPath, startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

describe('Docker with the weft network and IPAM plugin on two hosts', () => {
  let lab: Lab | undefined;
  const dockers: DockerHost[] = [];
  const agents: WeftAgent[] = [];
  const hosts = (): [LabHost, LabHost] => lab!.hosts as [LabHost, LabHost];
  const cnmSocket = (i: number): string => join(lab!.tmpDir, `agent-h${i + 1}`, 'weft-plugin.sock');
  const agentOpts = (i: number) => ({
    dir: join(lab!.tmpDir, `agent-h${i + 1}`),
    etcd: ETCD,
    // A sweep every 2 s (--resync-interval) runs through every Docker step here: it must leave Docker's attachments alone.
    args: ['--iface', 'eth0', '--resync-interval', '2', '--cnm-socket', cnmSocket(i), '--docker-socket', join(lab!.tmpDir, `docker-h${i + 1}`, 'docker.sock')],
  });

  const attachments = async (a: WeftAgent): Promise<AttachmentList['attachments']> => (await callAgent<AttachmentList>(a.runDir, 'GET', '/v1/attachments')).attachments;
  const reservations = async (a: WeftAgent): Promise<PoolState['reservations']> => {
    const text = await readFile(poolFile(a.stateDir), 'utf8').catch(() => undefined);
    return text === undefined ? [] : (JSON.parse(text) as PoolState).reservations;
  };
  const endpoints = async (a: WeftAgent): Promise<unknown[]> => {
    const text = await readFile(endpointsFile(a.stateDir), 'utf8').catch(() => undefined);
    return text === undefined ? [] : (JSON.parse(text) as { endpoints: unknown[] }).endpoints;
  };
  const vethsOnBridge = async (h: LabHost): Promise<string> => (await h.exec(['ip', '-o', 'link', 'show', 'master', 'weft0'])).stdout.trim();
  const ipOf = async (d: DockerHost, name: string): Promise<string> => (await d.cli(['inspect', '-f', '{{(index .NetworkSettings.Networks "net1").IPAddress}}', name])).stdout.trim();
  const gateways: string[] = [];
  /** weft's DNS server on host i (its gateway address), asked from inside that host. */
  const dig = (i: number, name: string) => hosts()[i]!.exec(['dig', '+short', '+time=1', '+tries=2', `@${gateways[i]}`, `${name}.weft.local`], { allowFail: true });
  const ping = (d: DockerHost, from: string, to: string, count = 3) => d.cli(['exec', from, 'ping', '-c', String(count), '-W', '2', to], { allowFail: true });

  beforeAll(async () => {
    assertRoot();
    assertBuilt();
    await ensureDocker();
    await ensurePodman(); // busybox-static for the image
    await cleanupDockerLeftovers();
    lab = await createLab({ hosts: 2, etcd: true });
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    const tarball = await busyboxTarball(lab.tmpDir);
    for (const [i, h] of lab.hosts.entries()) {
      // Before the holder starts: `ip netns exec` binds /etc/netns/<host>/docker over /etc/docker.
      await writePluginSpec(h, 'weft', cnmSocket(i));
      // The agent first: it switches forwarding on, so dockerd leaves the FORWARD policy at ACCEPT.
      agents.push(await startAgent(h, { ...agentOpts(i), holder: await h.holder() }));
    }
    const statuses = await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with both leases')));
    for (const [i, h] of lab.hosts.entries()) {
      const gateway = statuses[i]!.subnet!.replace(/\.0\/\d+$/, '.1');
      gateways.push(gateway);
      const d = new DockerHost(h, { dir: join(lab.tmpDir, `docker-h${i + 1}`), args: ['--dns', gateway, '--dns-search', 'weft.local'] });
      dockers.push(d);
      await d.start();
      await d.importImage(tarball);
      const net = await d.cli(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', 'net1'], { allowFail: true, timeoutMs: 30_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
      expect(net.code, `${net.stdout}${net.stderr}\nagent:\n${agents[i]!.proc.stderr.slice(-3000)}\ndockerd:\n${d.proc!.stderr.slice(-3000)}`).toBe(0);
    }
  });

  afterAll(async () => {
    // Docker first: its Leave/DeleteEndpoint calls need the agents.
    for (const d of dockers) {
      const notes = await d.teardown().catch((e: Error) => [e.message]);
      if (notes.length) console.warn(`docker teardown: ${notes.join('; ')}`);
    }
    for (const a of agents) await a.proc?.stop();
    for (const h of lab?.hosts ?? []) await removePluginSpec(h);
    await lab?.destroy();
  });

  it('containers on two hosts reach each other by IP and by --name; the address comes from the host lease, the veth hangs on weft0', async () => {
    const [d1, d2] = dockers as [DockerHost, DockerHost];
    await d1.cli(['run', '-d', '--name', 'alpha', '--network', 'net1', DOCKER_IMAGE, 'sleep', '3600']);
    await d2.cli(['run', '-d', '--name', 'beta', '--network', 'net1', '--network-alias', 'bee', DOCKER_IMAGE, 'sleep', '3600']);
    const [ipA, ipB] = [await ipOf(d1, 'alpha'), await ipOf(d2, 'beta')];
    const [s1, s2] = await Promise.all(agents.map((a) => a.status()));
    expect(ipA.split('.').slice(0, 3).join('.')).toBe(s1!.subnet!.split('.').slice(0, 3).join('.'));
    expect(ipB.split('.').slice(0, 3).join('.')).toBe(s2!.subnet!.split('.').slice(0, 3).join('.'));
    expect(s1).toMatchObject({ docker: { serving: true, endpoints: 1, dockerApi: 'connected' } });
    const [att] = await attachments(agents[0]!);
    expect(att).toMatchObject({ ip: `${ipA}/24`, containerId: expect.stringMatching(/^docker-/), netns: expect.stringContaining(join('docker-h1', 'exec', 'netns')) });
    expect(await vethsOnBridge(hosts()[0])).toContain(att!.hostIfName);
    // No docker_gwbridge: the default route is weft's gateway.
    expect((await d1.cli(['exec', 'alpha', 'ip', 'route'])).stdout).toContain(`default via ${s1!.subnet!.replace(/\.0\/\d+$/, '.1')}`);
    const ab = await ping(d1, 'alpha', ipB);
    expect(ab.code, ab.stdout + ab.stderr).toBe(0);
    const ba = await ping(d2, 'beta', ipA);
    expect(ba.code, ba.stdout + ba.stderr).toBe(0);

    // Names. weft's DNS on each host answers its Docker containers (read from the Docker API)...
    expect((await pollUntil(() => dig(0, 'alpha'), (r) => r.stdout.trim() === ipA, 10_000, 200)).stdout.trim()).toBe(ipA);
    expect((await pollUntil(() => dig(1, 'beta'), (r) => r.stdout.trim() === ipB, 10_000, 200)).stdout.trim()).toBe(ipB);
    expect((await dig(1, 'bee')).stdout.trim()).toBe(ipB);
    // ...and Docker's embedded DNS forwards what it does not know to weft (dockerd --dns): a `weft attach` container's name.
    const h1 = hosts()[0];
    const named = await h1.addContainer('named');
    const attached = await weft(h1, ['attach', '--netns', named.netnsPath, '--name', 'plainone', '--run-dir', agents[0]!.runDir]);
    expect(attached.code, attached.stderr).toBe(0);
    const byName = await d1.cli(['exec', 'alpha', 'ping', '-c', '1', '-W', '2', 'plainone'], { allowFail: true });
    expect(byName.stdout, byName.stderr).toContain(attached.stdout.trim().split('/')[0]!);
    expect((await weft(h1, ['detach', '--netns', named.netnsPath, '--run-dir', agents[0]!.runDir])).code).toBe(0);
    // Across hosts by --name (and alias): the records are gossiped between the agents.
    const ab2 = await pollUntil(() => d1.cli(['exec', 'alpha', 'ping', '-c', '1', '-W', '2', 'beta'], { allowFail: true }), (r) => r.code === 0, 15_000, 500);
    expect(ab2.stdout, ab2.stderr).toContain(ipB);
    expect((await d1.cli(['exec', 'alpha', 'ping', '-c', '1', '-W', '2', 'bee'], { allowFail: true })).stdout).toContain(ipB);
    const ba2 = await d2.cli(['exec', 'beta', 'ping', '-c', '1', '-W', '2', 'alpha'], { allowFail: true });
    expect(ba2.stdout, ba2.stderr).toContain(ipA);
  });

  it('the agent SIGKILLed and restarted during a ping loses no packet, and cleans up after the restart', async () => {
    const [d1] = dockers as [DockerHost, DockerHost];
    const ipB = await ipOf(dockers[1]!, 'beta');
    const pinging = d1.cli(['exec', 'alpha', 'ping', '-c', '40', '-i', '0.1', '-W', '2', ipB], { allowFail: true, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 500));
    agents[0]!.proc.kill('SIGKILL');
    await agents[0]!.proc.exited;
    agents[0] = await startAgent(hosts()[0], { ...agentOpts(0), holder: await hosts()[0].holder() });
    await agents[0].ready();
    const p = await pinging;
    expect(p.stdout, p.stderr).toMatch(/40 packets transmitted, 40 packets received, 0% packet loss/);
    // The new agent still knows the endpoint: docker rm -f runs Leave/DeleteEndpoint against it.
    const [att] = await attachments(agents[0]);
    await d1.cli(['rm', '-f', 'alpha']);
    expect(await attachments(agents[0])).toEqual([]);
    expect(await reservations(agents[0])).toEqual([]);
    expect(await endpoints(agents[0])).toEqual([]);
    expect(await vethsOnBridge(hosts()[0])).not.toContain(att!.hostIfName);
    // Its name left weft's DNS (the restarted agent re-read it from the Docker API, then saw it die).
    expect((await pollUntil(() => dig(0, 'alpha'), (r) => r.stdout.trim() === '', 10_000, 200)).stdout.trim()).toBe('');
  });

  it('a Docker container reaches a `weft attach` container and a CNI container on the other host, by IP and by name', async () => {
    const [d1] = dockers as [DockerHost, DockerHost];
    const h2 = hosts()[1];
    const plain = await h2.addContainer('attach');
    const attached = await weft(h2, ['attach', '--netns', plain.netnsPath, '--name', 'plain', '--run-dir', agents[1]!.runDir]);
    expect(attached.code, attached.stderr).toBe(0);
    const plainIp = attached.stdout.trim().split('/')[0]!;
    const cni = await h2.addContainer('cni');
    const add = await h2.exec([repoPath('native', 'build', 'weft-cni')], {
      input: JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft', runDir: agents[1]!.runDir }),
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'cni-c1', CNI_NETNS: cni.netnsPath, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=cnipod' },
      allowFail: true,
    });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const cniIp = (JSON.parse(add.stdout) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
    await d1.cli(['run', '-d', '--name', 'gamma', '--network', 'net1', DOCKER_IMAGE, 'sleep', '3600']);
    for (const ip of [plainIp, cniIp]) {
      const r = await ping(d1, 'gamma', ip);
      expect(r.code, `gamma → ${ip}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    // And by name, through Docker's embedded DNS, weft's DNS on host 1 and the gossiped records of host 2.
    for (const [name, ip] of [['plain', plainIp], ['cnipod', cniIp]] as const) {
      const r = await pollUntil(() => d1.cli(['exec', 'gamma', 'ping', '-c', '1', '-W', '2', name], { allowFail: true }), (x) => x.code === 0, 15_000, 500);
      expect(r.stdout, `gamma → ${name}: ${r.stderr}`).toContain(ip);
    }
    // The other way: the `weft attach` container on host 2 resolves the Docker container of host 1 through weft's DNS.
    const gammaIp = await ipOf(d1, 'gamma');
    const fromPlain = await pollUntil(() => plain.exec(['dig', '+short', '+time=1', '+tries=2', `@${gateways[1]}`, 'gamma.weft.local'], { allowFail: true }), (r) => r.stdout.trim() === gammaIp, 15_000, 300);
    expect(fromPlain.stdout.trim()).toBe(gammaIp);
    // Docker's and CNI's addresses on host 2 come from one pool: all distinct.
    const ips = (await reservations(agents[1]!)).map((r) => r.ip);
    expect(new Set(ips).size).toBe(ips.length);
    await d1.cli(['rm', '-f', 'gamma']);
    expect((await weft(h2, ['detach', '--netns', plain.netnsPath, '--run-dir', agents[1]!.runDir])).code).toBe(0);
    const del = await h2.exec([repoPath('native', 'build', 'weft-cni')], {
      input: JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft', runDir: agents[1]!.runDir }),
      env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'cni-c1', CNI_NETNS: cni.netnsPath, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
      allowFail: true,
    });
    expect(del.code, del.stdout + del.stderr).toBe(0);
  });

  it('--ip on a network created with --subnet <host subnet>: honoured when free, refused naming the holder when not', async () => {
    const [d1] = dockers as [DockerHost, DockerHost];
    const subnet = (await agents[0]!.status()).subnet!;
    const other = await d1.cli(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', '--subnet', '10.99.0.0/24', 'wrong'], { allowFail: true });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/subnet 10\.99\.0\.0\/24 cannot be used.*host's lease/);
    await d1.cli(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', '--subnet', subnet, 'pinned']);
    const ip = subnet.replace(/\.0\/\d+$/, '.200');
    await d1.cli(['run', '-d', '--name', 'pin1', '--network', 'pinned', '--ip', ip, DOCKER_IMAGE, 'sleep', '3600']);
    expect((await d1.cli(['inspect', '-f', '{{(index .NetworkSettings.Networks "pinned").IPAddress}}', 'pin1'])).stdout.trim()).toBe(ip);
    const taken = await d1.cli(['run', '-d', '--name', 'pin2', '--network', 'pinned', '--ip', ip, DOCKER_IMAGE, 'sleep', '3600'], { allowFail: true });
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(new RegExp(`${ip.replace(/\./g, '\\.')} is already held by container docker-`));
    await d1.cli(['rm', '-f', 'pin1', 'pin2'], { allowFail: true });
    await d1.cli(['network', 'rm', 'pinned']);
  });

  it('-p 8080:80 answers on the host address from the other host; gone with the container', async () => {
    const [d1] = dockers as [DockerHost, DockerHost];
    const [h1, h2] = hosts();
    await d1.cli(['run', '-d', '--name', 'web', '--network', 'net1', '-p', '8080:80', DOCKER_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const get = () => h2.exec(['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', `http://${h1.ip}:8080/group`], { allowFail: true });
    const answer = await pollUntil(get, (r) => r.stdout.includes('root:x:0:'), 10_000, 200);
    expect(answer.stdout, answer.stderr).toContain('root:x:0:');
    // From the host itself too (the output hook).
    const local = await h1.exec(['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', `http://${h1.ip}:8080/group`], { allowFail: true });
    expect(local.stdout, local.stderr).toContain('root:x:0:');
    await d1.cli(['rm', '-f', 'web']);
    expect((await get()).stdout).not.toContain('root:x:0:');
    expect((await h1.exec(['nft', 'list', 'ruleset'])).stdout).not.toMatch(/dport 8080/);
  });

  it('a dockerd restart with live-restore off leaves no attachment behind', async () => {
    const [d1] = dockers as [DockerHost, DockerHost];
    // sleep as PID 1 ignores SIGTERM: a short stop timeout keeps dockerd's shutdown quick.
    await d1.cli(['run', '-d', '--name', 'restarted', '--stop-timeout', '1', '--network', 'net1', DOCKER_IMAGE, 'sleep', '3600']);
    expect(await attachments(agents[0]!)).toHaveLength(1);
    await d1.stop();
    await d1.start();
    // dockerd has stopped the container (no live-restore): its endpoint is released through the plugin.
    expect(await pollUntil(() => attachments(agents[0]!), (l) => l.length === 0, 20_000, 200)).toEqual([]);
    expect(await vethsOnBridge(hosts()[0])).toBe('');
    await d1.cli(['rm', '-f', 'restarted']);
    expect(await reservations(agents[0]!)).toEqual([]);
  });

  it('docker rm -f and docker network rm leave no veth, no reservation, no endpoint record, no DNS record', async () => {
    for (const d of dockers) {
      const ids = (await d.cli(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await d.cli(['rm', '-f', ...ids]);
      await d.cli(['network', 'rm', 'net1']);
    }
    for (const [i, a] of agents.entries()) {
      expect((await attachments(a)).filter((x) => x.containerId.startsWith('docker-'))).toEqual([]);
      expect((await reservations(a)).filter((r) => r.containerId.startsWith('docker-'))).toEqual([]);
      expect(await endpoints(a)).toEqual([]);
      expect(await vethsOnBridge(hosts()[i]!)).toBe('');
      // Every host's view, the other host's records included (their tombstones come by gossip).
      const live = async () => (await callAgent<{ records: { name: string; deleted: boolean }[] }>(a.runDir, 'GET', '/v1/dns')).records.filter((r) => !r.deleted);
      expect(await pollUntil(live, (l) => l.length === 0, 10_000, 200)).toEqual([]);
    }
  });

  it('the plugin socket answers malformed JSON with an Err reply and 404 for unknown methods', async () => {
    const post = (path: string, body: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = request({ socketPath: cnmSocket(0), path, method: 'POST' }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const bad = await post('/NetworkDriver.CreateEndpoint', '{"NetworkID": "x",');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toHaveProperty('Err');
    expect((await post('/NetworkDriver.NoSuchMethod', '{}')).status).toBe(404);
    // And the agent still serves Docker afterwards.
    expect((await post('/Plugin.Activate', '')).text).toContain('NetworkDriver');
  });
});
