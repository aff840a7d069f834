// A real runtime: Debian's podman 4.3 (CNI backend, runc) starts containers in
// two lab hosts through a conflist, and the containers reach each other.
//
// The same scenario runs twice: first with the reference `bridge` + `host-local`
// plugins and plain host routes over the underlay (which proves the harness and
// podman itself work here, so a failure in the second part is weft's), then with
// weft: one agent per host, the relay and conflist put in place by `weft
// install-cni` (never a hand-written conflist: what users get is what is tested),
// with the reference portmap chained after weft. podman
// runs every command inside the host's holder (see test/lab/podman.ts), and the
// weft agent runs there too, so it can open the netns paths podman hands it.
// Everything podman writes stays in per-host temp dirs; nothing outside them changes.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolFile, type PoolState } from '../../ipam/address-pool.js';
import { callAgent } from '../../agent/api/client.js';
import type { AttachmentList } from '../../agent/api/types.js';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabHost } from '../lab/index.js';
import { busyboxTarball, cleanupPodmanLeftovers, ensurePodman, PodmanHost } from '../lab/podman.js';
import { assertBuilt, startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
const SLEEP = ['sleep', '3600'];
const IPV4 = /^\d+\.\d+\.\d+\.\d+$/;

/** A lab of two hosts with a podman on each; `plugins` are the CNI plugin dirs. */
async function podmanLab(etcd: boolean, pluginDirs: (lab: Lab) => Promise<string[]>): Promise<{ lab: Lab; podmans: PodmanHost[] }> {
  assertRoot();
  await ensurePodman();
  await cleanupPodmanLeftovers();
  const lab = await createLab({ hosts: 2, etcd });
  const podmans: PodmanHost[] = [];
  try {
    const [tarball, dirs] = await Promise.all([busyboxTarball(lab.tmpDir), pluginDirs(lab)]);
    for (const [i, host] of lab.hosts.entries()) {
      podmans.push(await PodmanHost.create(host, { dir: join(lab.tmpDir, `podman-h${i + 1}`), cniPluginDirs: dirs, imageTarball: tarball }));
    }
  } catch (e) {
    await teardown(lab, podmans);
    throw e;
  }
  return { lab, podmans };
}

/** Removes podman's containers and leftovers first (CNI DEL needs the plugins still there), then the lab. */
async function teardown(lab: Lab | undefined, podmans: readonly PodmanHost[]): Promise<void> {
  const notes = (await Promise.all(podmans.map((p) => p.teardown().catch((e: Error) => [e.message])))).flat();
  if (notes.length) console.warn(`podman teardown: ${notes.join('; ')}`);
  await lab?.destroy();
}

/** Starts `a` on the first podman and `b` on the second, both on `network`; returns their addresses. */
async function startPair(podmans: readonly PodmanHost[], network: string): Promise<{ ipA: string; ipB: string }> {
  const [pa, pb] = podmans as [PodmanHost, PodmanHost];
  await pa.run({ name: 'a', network, cmd: SLEEP, capAdd: ['NET_RAW'] });
  await pb.run({ name: 'b', network, cmd: SLEEP, capAdd: ['NET_RAW'] });
  return { ipA: await pa.ip('a', network), ipB: await pb.ip('b', network) };
}

async function expectPingsBothWays(podmans: readonly PodmanHost[], ipA: string, ipB: string): Promise<void> {
  const [pa, pb] = podmans as [PodmanHost, PodmanHost];
  const ab = await pa.exec('a', ['ping', '-c', '3', '-W', '2', ipB]);
  expect(ab.code, `a → b (${ipB}): ${ab.stdout}${ab.stderr}`).toBe(0);
  expect(ab.stdout).toMatch(/3 packets received/);
  const ba = await pb.exec('b', ['ping', '-c', '3', '-W', '2', ipA]);
  expect(ba.code, `b → a (${ipA}): ${ba.stdout}${ba.stderr}`).toBe(0);
  expect(ba.stdout).toMatch(/3 packets received/);
}

describe('podman with the reference bridge + host-local plugins (the harness)', () => {
  let lab: Lab | undefined;
  let podmans: PodmanHost[] = [];
  const ipamDir = (i: number): string => join(lab!.tmpDir, `ipam-h${i}`);
  /** host-local's reservations: one file per address, named after it. */
  const reserved = async (i: number): Promise<string[]> => (await readdir(join(ipamDir(i), 'ref')).catch(() => [])).filter((f) => IPV4.test(f));

  beforeAll(async () => {
    ({ lab, podmans } = await podmanLab(false, async () => ['/usr/lib/cni']));
    for (const [i, p] of podmans.entries()) {
      await p.addNetwork('ref', {
        cniVersion: '1.0.0',
        name: 'ref',
        plugins: [
          {
            type: 'bridge',
            bridge: 'cni-ref0',
            isGateway: true,
            isDefaultGateway: true,
            ipMasq: false,
            ipam: { type: 'host-local', subnet: `10.88.${i + 1}.0/24`, dataDir: ipamDir(i + 1) },
          },
        ],
      });
    }
    // What weft's data plane does for real, done by hand: each host routes the other's subnet over the underlay.
    const [h1, h2] = lab.hosts as [LabHost, LabHost];
    await h1.ipBatch([`route add 10.88.2.0/24 via ${h2.ip}`]);
    await h2.ipBatch([`route add 10.88.1.0/24 via ${h1.ip}`]);
  });
  afterAll(async () => teardown(lab, podmans));

  it('two containers on two hosts reach each other; podman rm frees both addresses', async () => {
    const { ipA, ipB } = await startPair(podmans, 'ref');
    expect(ipA).toMatch(/^10\.88\.1\./);
    expect(ipB).toMatch(/^10\.88\.2\./);
    expect(await reserved(1)).toEqual([ipA]);
    expect(await reserved(2)).toEqual([ipB]);
    await expectPingsBothWays(podmans, ipA, ipB);
    await podmans[0]!.rm('a');
    await podmans[1]!.rm('b');
    expect(await reserved(1)).toEqual([]);
    expect(await reserved(2)).toEqual([]);
    expect(await podmans[0]!.containers()).toEqual([]);
  });
});

describe('podman with weft, through the conflist `weft install-cni` writes, on two hosts', () => {
  let lab: Lab | undefined;
  let podmans: PodmanHost[] = [];
  const agents: WeftAgent[] = [];

  const attachments = (a: WeftAgent): Promise<AttachmentList> => callAgent<AttachmentList>(a.runDir, 'GET', '/v1/attachments');
  const reservations = async (a: WeftAgent): Promise<PoolState['reservations']> => {
    const text = await readFile(poolFile(a.stateDir), 'utf8').catch(() => undefined);
    return text === undefined ? [] : (JSON.parse(text) as PoolState).reservations;
  };
  const prefix24 = (ip: string): string => ip.split('.').slice(0, 3).join('.');

  /** podman rm, then nothing of the container is left: no attachment, no reservation, no veth. */
  async function expectRmFreesAll(i: number, name: string, ip: string): Promise<void> {
    const agent = agents[i]!;
    const hostIf = (await attachments(agent)).attachments.find((x) => x.ip.split('/')[0] === ip)?.hostIfName;
    expect(hostIf, `${name} (${ip}) is not attached on h${i + 1}`).toBeDefined();
    await podmans[i]!.rm(name);
    expect((await attachments(agent)).attachments.filter((x) => x.ip.split('/')[0] === ip)).toEqual([]);
    expect((await reservations(agent)).filter((r) => r.ip === ip)).toEqual([]);
    expect((await lab!.hosts[i]!.exec(['ip', '-o', 'link', 'show'])).stdout).not.toContain(`${hostIf}@`);
    expect(await podmans[i]!.containers()).not.toContain(name);
  }

  beforeAll(async () => {
    assertBuilt();
    // The relay goes where install-cni puts it; podman also searches the reference plugins (portmap).
    let bin = '';
    ({ lab, podmans } = await podmanLab(true, async (l) => {
      bin = join(l.tmpDir, 'cni-bin');
      await mkdir(bin, { recursive: true });
      return [bin, '/usr/lib/cni'];
    }));
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, p] of podmans.entries()) {
      // In the holder: the agent must see the netns mounts podman makes there.
      const agent = await startAgent(p.host, { dir: join(lab.tmpDir, `agent-h${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0'], holder: p.holder });
      agents.push(agent);
      const inst = await weft(p.host, ['install-cni', '--cni-bin-dir', bin, '--cni-conf-dir', p.confDir, '--run-dir', agent.runDir]);
      expect(inst.code, inst.stderr).toBe(0);
      expect(inst.stdout).toMatch(/chained portmap/);
    }
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with both leases')));
  });
  afterAll(async () => {
    // podman first: its CNI DELs need the agents.
    await teardown(undefined, podmans);
    for (const a of agents) await a.proc?.stop();
    await lab?.destroy();
  });

  it('the installed conflist is what podman 4.3 accepts: cniVersion 1.0.0, weft then portmap', async () => {
    const conf = JSON.parse(await readFile(join(podmans[0]!.confDir, '10-weft.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: { type: string }[] };
    expect(conf).toMatchObject({ cniVersion: '1.0.0', name: 'weft' });
    expect(conf.plugins.map((x) => x.type)).toEqual(['weft', 'portmap']);
    const nets = await podmans[0]!.podman(['network', 'ls', '--format', '{{.Name}}']);
    expect(nets.stdout.split('\n')).toContain('weft');
  });

  it('two containers on two hosts reach each other; podman rm leaves no attachment and no address reserved', async () => {
    const [sa, sb] = await Promise.all(agents.map((a) => a.status()));
    const { ipA, ipB } = await startPair(podmans, 'weft');
    // Each address comes from its own host's lease.
    expect(prefix24(ipA)).toBe(prefix24(sa!.subnet!));
    expect(prefix24(ipB)).toBe(prefix24(sb!.subnet!));
    const [listA, listB] = await Promise.all(agents.map(attachments));
    expect(listA!.attachments.map((x) => x.ip.split('/')[0])).toEqual([ipA]);
    expect(listB!.attachments.map((x) => x.ip.split('/')[0])).toEqual([ipB]);
    expect((await reservations(agents[0]!)).map((r) => r.ip)).toEqual([ipA]);

    await expectPingsBothWays(podmans, ipA, ipB);

    // podman passes the container name (K8S_POD_NAME=b): weft registers it, and host A's DNS server answers it.
    const gwA = ipA.replace(/\.\d+$/, '.1');
    const looked = await pollUntil(() => podmans[0]!.exec('a', ['nslookup', 'b.weft.local', gwA]), (r) => r.stdout.includes(ipB), 15_000, 200);
    expect(looked.stdout, looked.stderr).toContain(ipB);

    await expectRmFreesAll(0, 'a', ipA);
    await expectRmFreesAll(1, 'b', ipB);
    for (const a of agents) {
      const ps = await weft(a.host, ['ps', '--json', '--run-dir', a.runDir]);
      expect(ps.code, ps.stderr).toBe(0);
      expect((JSON.parse(ps.stdout) as AttachmentList).attachments).toEqual([]);
      expect(await reservations(a)).toEqual([]);
    }
  });

  it('podman run --ip gets exactly that address; a second container asking for it is refused', async () => {
    const subnet = (await agents[0]!.status()).subnet!;
    const want = `${prefix24(subnet)}.77`;
    await podmans[0]!.run({ name: 'fixed', network: 'weft', cmd: SLEEP, ip: want });
    expect(await podmans[0]!.ip('fixed', 'weft')).toBe(want);
    expect((await attachments(agents[0]!)).attachments.map((x) => x.ip)).toEqual([`${want}/24`]);
    const again = await podmans[0]!.run({ name: 'fixed2', network: 'weft', cmd: SLEEP, ip: want }).then(
      () => 'started',
      (e: Error) => e.message,
    );
    // podman reports weft's CNI error; the address stays with the first container.
    expect(again).toMatch(/already held by container/);
    expect(await podmans[0]!.inspect('fixed2', '{{.State.Status}}').catch(() => 'absent')).not.toMatch(/running/);
    await podmans[0]!.rm('fixed2', { allowFail: true });
    expect((await attachments(agents[0]!)).attachments.map((x) => x.ip)).toEqual([`${want}/24`]);
    await expectRmFreesAll(0, 'fixed', want);
  });

  it('-p 8080:80 through the chained portmap: another host reaches the container at this host\'s address', async () => {
    const [h1, h2] = lab!.hosts as [LabHost, LabHost];
    const page = 'weft-portmap-ok';
    await podmans[0]!.run({ name: 'web', network: 'weft', publish: ['8080:80'], cmd: ['sh', '-c', `mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 80 -h /www`] });
    const ip = await podmans[0]!.ip('web', 'weft');
    const fetch = (): Promise<string> =>
      h2.exec(['timeout', '5', '/bin/busybox', 'wget', '-q', '-O-', `http://${h1.ip}:8080/`], { allowFail: true }).then((r) => r.stdout.trim());
    expect(await pollUntil(fetch, (body) => body === page, 15_000, 300)).toBe(page);
    await expectRmFreesAll(0, 'web', ip);
    // The mapping went with the container (portmap's DEL ran after weft's answer).
    expect(await fetch()).toBe('');
  });
});
