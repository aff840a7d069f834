// A real runtime: Debian's podman 4.3 (CNI backend, runc) starts containers in
// two lab hosts through a conflist, and the containers reach each other.
//
// The same scenario runs twice: first with the reference `bridge` + `host-local`
// plugins and plain host routes over the underlay (which proves the harness and
// podman itself work here, so a failure in the second part is weft's), then with
// weft: one agent per host, the `weft-cni` relay installed as `weft`. podman
// runs every command inside the host's holder (see test/lab/podman.ts), and the
// weft agent runs there too, so it can open the netns paths podman hands it.
// Everything podman writes stays in per-host temp dirs; nothing outside them changes.
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolFile, type PoolState } from '../../ipam/address-pool.js';
import { callAgent } from '../../agent/api/client.js';
import type { AttachmentList } from '../../agent/api/types.js';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabHost } from '../lab/index.js';
import { busyboxTarball, cleanupPodmanLeftovers, ensurePodman, PodmanHost } from '../lab/podman.js';
import { assertBuilt, repoPath, startAgent, weft, type WeftAgent } from '../lab/weft.js';

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

describe('podman with weft (weft-cni relay → agent) on two hosts', () => {
  let lab: Lab | undefined;
  let podmans: PodmanHost[] = [];
  const agents: WeftAgent[] = [];

  const attachments = (a: WeftAgent): Promise<AttachmentList> => callAgent<AttachmentList>(a.runDir, 'GET', '/v1/attachments');
  const reservations = async (a: WeftAgent): Promise<PoolState['reservations']> => {
    const text = await readFile(poolFile(a.stateDir), 'utf8').catch(() => undefined);
    return text === undefined ? [] : (JSON.parse(text) as PoolState).reservations;
  };

  beforeAll(async () => {
    assertBuilt();
    ({ lab, podmans } = await podmanLab(true, async (l) => {
      // The relay under the name the conflist's "type" gives, in a plugin dir of our own.
      const bin = join(l.tmpDir, 'cni-bin');
      await mkdir(bin, { recursive: true });
      await copyFile(repoPath('native', 'build', 'weft-cni'), join(bin, 'weft'));
      return [bin, '/usr/lib/cni'];
    }));
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, p] of podmans.entries()) {
      // In the holder: the agent must see the netns mounts podman makes there.
      const agent = await startAgent(p.host, { dir: join(lab.tmpDir, `agent-h${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0'], holder: p.holder });
      agents.push(agent);
      await p.addNetwork('weft', { cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft', runDir: agent.runDir }] });
    }
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with both leases')));
  });
  afterAll(async () => {
    // podman first: its CNI DELs need the agents.
    await teardown(undefined, podmans);
    for (const a of agents) await a.proc?.stop();
    await lab?.destroy();
  });

  it('two containers on two hosts reach each other; podman rm leaves no attachment and no address reserved', async () => {
    const [sa, sb] = await Promise.all(agents.map((a) => a.status()));
    const { ipA, ipB } = await startPair(podmans, 'weft');
    // Each address comes from its own host's lease.
    expect(ipA.split('.').slice(0, 3).join('.')).toBe(sa!.subnet!.split('.').slice(0, 3).join('.'));
    expect(ipB.split('.').slice(0, 3).join('.')).toBe(sb!.subnet!.split('.').slice(0, 3).join('.'));
    const [listA, listB] = await Promise.all(agents.map(attachments));
    expect(listA!.attachments.map((x) => x.ip.split('/')[0])).toEqual([ipA]);
    expect(listB!.attachments.map((x) => x.ip.split('/')[0])).toEqual([ipB]);
    expect((await reservations(agents[0]!)).map((r) => r.ip)).toEqual([ipA]);
    const hostIf = listA!.attachments[0]!.hostIfName;
    expect((await lab!.hosts[0]!.exec(['ip', '-o', 'link', 'show'])).stdout).toContain(`${hostIf}@`);

    await expectPingsBothWays(podmans, ipA, ipB);

    // podman passes the container name (K8S_POD_NAME=b): weft registers it, and host A's DNS server answers it.
    const gwA = ipA.replace(/\.\d+$/, '.1');
    const looked = await pollUntil(() => podmans[0]!.exec('a', ['nslookup', 'b.weft.local', gwA]), (r) => r.stdout.includes(ipB), 15_000, 200);
    expect(looked.stdout, looked.stderr).toContain(ipB);

    await podmans[0]!.rm('a');
    await podmans[1]!.rm('b');
    for (const a of agents) {
      expect((await attachments(a)).attachments).toEqual([]);
      expect(await reservations(a)).toEqual([]);
      const ps = await weft(a.host, ['ps', '--json', '--run-dir', a.runDir]);
      expect(ps.code, ps.stderr).toBe(0);
      expect((JSON.parse(ps.stdout) as AttachmentList).attachments).toEqual([]);
    }
    // The host side of the veth went with the container.
    expect((await lab!.hosts[0]!.exec(['ip', '-o', 'link', 'show'])).stdout).not.toContain(`${hostIf}@`);
    expect(await podmans[0]!.containers()).toEqual([]);
    expect(await podmans[1]!.containers()).toEqual([]);
  });
});
