// Real runtimes: Debian's containerd 1.6 in two lab hosts, driven through the
// conflist `weft install-cni` writes (with the reference loopback and portmap
// in the same bin dir, as a node would have them).
//
//   - the CRI plugin, the path kubelet takes, over gRPC (test/lab/cri.ts):
//     RunPodSandbox on both hosts gives each pod an address of its host's
//     subnet, the pods ping each other across hosts, and StopPodSandbox +
//     RemovePodSandbox free the attachment;
//   - `ctr run --cni -d`, then kill and remove: ctr sends no DEL, so only the
//     agent's sweep frees the attachment.
//
// containerd, ctr and the agent run in each host's holder (see
// test/lab/containerd.ts for the private mounts that keep them per host).

import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../agent/api/client.js';
import type { AttachmentList, ListedAttachment } from '../../agent/api/types.js';
import { poolFile, type PoolState } from '../../ipam/address-pool.js';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab } from '../lab/index.js';
import { ContainerdHost, pauseImageArchive } from '../lab/containerd.js';
import { CriClient } from '../lab/cri.js';
import { busyboxTarball } from '../lab/podman.js';
import { assertBuilt, startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

const attachments = async (a: WeftAgent): Promise<ListedAttachment[]> => (await callAgent<AttachmentList>(a.runDir, 'GET', '/v1/attachments')).attachments;
const reservedIps = async (a: WeftAgent): Promise<string[]> => {
  const text = await readFile(poolFile(a.stateDir), 'utf8').catch(() => undefined);
  return text === undefined ? [] : (JSON.parse(text) as PoolState).reservations.map((r) => r.ip);
};
const prefix24 = (ip: string): string => ip.split('.').slice(0, 3).join('.');

describe('containerd 1.6 (CRI and ctr) with weft, through the installed conflist, on two hosts', () => {
  let lab: Lab | undefined;
  const hosts: ContainerdHost[] = [];
  const agents: WeftAgent[] = [];
  const cris: CriClient[] = [];

  beforeAll(async () => {
    assertRoot();
    assertBuilt();
    lab = await createLab({ hosts: 2 });
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    const archive = await pauseImageArchive(lab.tmpDir, await busyboxTarball(lab.tmpDir));
    for (const [i, host] of lab.hosts.entries()) {
      const bin = join(lab.tmpDir, `cni-bin-h${i + 1}`);
      const conf = join(lab.tmpDir, `cni-conf-h${i + 1}`);
      await mkdir(bin, { recursive: true });
      await mkdir(conf, { recursive: true });
      // A node's bin dir: the reference plugins containerd needs (loopback) and portmap, then weft.
      for (const p of ['loopback', 'portmap']) await copyFile(join('/usr/lib/cni', p), join(bin, p));
      const ctd = await ContainerdHost.create(host, { dir: join(lab.tmpDir, `containerd-h${i + 1}`), cniBinDir: bin, cniConfDir: conf, imageArchive: archive });
      hosts.push(ctd);
      const agent = await startAgent(host, { dir: join(lab.tmpDir, `agent-h${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0', '--resync-interval', '2'], holder: ctd.holder });
      agents.push(agent);
      const inst = await weft(host, ['install-cni', '--cni-bin-dir', bin, '--cni-conf-dir', conf, '--run-dir', agent.runDir]);
      expect(inst.code, inst.stderr).toBe(0);
      expect(inst.stdout).toMatch(/chained portmap/);
      expect(inst.stderr, 'install-cni warned about the bin dir').toBe('');
      cris.push(new CriClient(ctd.socket));
    }
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with both leases')));
  });
  afterAll(async () => {
    for (const c of cris) c.close();
    const notes = (await Promise.all(hosts.map((h) => h.teardown().catch((e: Error) => [e.message])))).flat();
    if (notes.length) console.warn(`containerd teardown: ${notes.join('; ')}`);
    for (const a of agents) await a.proc?.stop();
    await lab?.destroy();
  });

  it('CRI: the network is ready; pods on two hosts get their host\'s addresses and reach each other; Stop + Remove free them', async () => {
    // containerd reports NetworkReady once it has loaded a CNI config it accepts.
    const conditions = await pollUntil(() => cris[0]!.status(), (cs) => cs.some((c) => c.type === 'NetworkReady' && c.status), 15_000, 300);
    expect(conditions.find((c) => c.type === 'NetworkReady'), JSON.stringify(conditions)).toMatchObject({ status: true });

    const pods = await Promise.all(
      cris.map((cri, i) =>
        cri.runPodSandbox({
          metadata: { name: `pod-${i + 1}`, uid: `uid-${i + 1}-${lab!.tmpDir.length}`, namespace: 'default', attempt: 0 },
          hostname: `pod-${i + 1}`,
          logDirectory: join(hosts[i]!.opts.dir, 'logs'),
          linux: { cgroupParent: hosts[i]!.cgroupParent },
        }),
      ),
    );
    const statuses = await Promise.all(pods.map((id, i) => cris[i]!.podSandboxStatus(id)));
    const ips = statuses.map((s) => s.network?.ip ?? '');
    for (const [i, s] of statuses.entries()) {
      expect(s.state).toBe('SANDBOX_READY');
      const subnet = (await agents[i]!.status()).subnet!;
      expect(prefix24(ips[i]!), `pod ${i + 1} ${ips[i]} outside ${subnet}`).toBe(prefix24(subnet));
      const [att] = await attachments(agents[i]!);
      // kubelet's CNI_ARGS carry the pod's name and namespace, kept for DNS.
      expect(att).toMatchObject({ ip: `${ips[i]}/24`, name: `pod-${i + 1}`, podNamespace: 'default', stale: false });
      expect(att!.netns).toMatch(/^\/var\/run\/netns\/cni-|^\/run\/netns\/cni-/);
    }

    const pingFrom = (i: number, to: string) =>
      attachments(agents[i]!).then(([att]) => hosts[i]!.holder.exec(['nsenter', `--net=${att!.netns}`, 'ping', '-c', '3', '-W', '2', to], { allowFail: true }));
    const ab = await pingFrom(0, ips[1]!);
    expect(ab.code, ab.stdout + ab.stderr).toBe(0);
    const ba = await pingFrom(1, ips[0]!);
    expect(ba.code, ba.stdout + ba.stderr).toBe(0);

    for (const [i, id] of pods.entries()) {
      await cris[i]!.stopPodSandbox(id);
      // StopPodSandbox is where the network goes (kubelet may call it more than once).
      expect(await attachments(agents[i]!)).toEqual([]);
      expect(await reservedIps(agents[i]!)).toEqual([]);
      await cris[i]!.stopPodSandbox(id);
      await cris[i]!.removePodSandbox(id);
      await expect(cris[i]!.podSandboxStatus(id)).rejects.toThrow(/not found|NotFound/i);
    }
  });

  it('ctr run --cni -d, then kill and remove: no DEL comes, the sweep frees the attachment', async () => {
    const [ctd, agent] = [hosts[0]!, agents[0]!];
    const r = await ctd.runDetached('ctr-1', ['sleep', '3600']);
    expect(r.code, r.stderr).toBe(0);
    const [att] = await attachments(agent);
    expect(att, 'ctr run --cni attached nothing').toBeDefined();
    expect(att!.netns).toMatch(/^\/proc\/\d+\/ns\/net$/);
    expect(await reservedIps(agent)).toEqual([att!.ip.split('/')[0]]);

    await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', 'ctr-1']);
    await pollUntil(() => ctd.ctr(['task', 'ls'], { allowFail: true }), (x) => !/ctr-1\s+\d+\s+RUNNING/.test(x.stdout), 10_000, 200);
    await ctd.ctr(['task', 'rm', 'ctr-1'], { allowFail: true });
    await ctd.ctr(['containers', 'rm', 'ctr-1']);
    const left = await pollUntil(() => attachments(agent), (l) => l.length === 0, 15_000, 250);
    expect(left).toEqual([]);
    // Freed by the sweep, not by a DEL (ctr sends none).
    expect(agent.proc.stdout + agent.proc.stderr).toMatch(/freeing a leftover attachment/);
    expect(await reservedIps(agent)).toEqual([]);
    expect((await lab!.hosts[0]!.exec(['ip', '-o', 'link', 'show'])).stdout).not.toContain(`${att!.hostIfName}@`);
  });
});
