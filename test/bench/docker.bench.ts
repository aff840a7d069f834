// Container start with the Docker plugin: `docker run --rm --network net1
// weft-busybox true`, wall time as the CLI sees it (create, Join through the
// plugin, start, exit, Leave/DeleteEndpoint/ReleaseAddress, remove), p50 of 20.
// Baseline in the same run, same dockerd, same image: a user-defined network
// of Docker's own `bridge` driver (embedded DNS like net1). Runs interleaved
// (weft, bridge, weft, …) so drift on this shared 2-core machine hits both
// alike; two warm-up runs of each first.

import { join } from 'node:path';
import { createLab, UNDERLAY_GATEWAY } from '../lab/index.js';
import { DockerHost, DOCKER_IMAGE, ensureDocker, removePluginSpec, writePluginSpec } from '../lab/docker.js';
import { busyboxTarball, ensurePodman } from '../lab/podman.js';
import { startAgent, weft } from '../lab/weft.js';
import { percentile, type BenchResult } from './types.js';

const RUNS = 20;
const WARMUP = 2;
const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

export default async function dockerBench(): Promise<BenchResult> {
  await ensureDocker();
  await ensurePodman();
  const lab = await createLab({ hosts: 1, etcd: true });
  const host = lab.hosts[0]!;
  const docker = new DockerHost(host, { dir: join(lab.tmpDir, 'docker') });
  try {
    const set = await weft(host, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    if (set.code !== 0) throw new Error(set.stderr);
    const socket = join(lab.tmpDir, 'weft-plugin.sock');
    await writePluginSpec(host, 'weft', socket);
    const agent = await startAgent(host, { dir: join(lab.tmpDir, 'agent'), etcd: ETCD, args: ['--iface', 'eth0', '--log-level', 'warn', '--cnm-socket', socket], holder: await host.holder() });
    await agent.ready(30_000);
    await docker.start();
    await docker.importImage(await busyboxTarball(lab.tmpDir));
    await docker.cli(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', 'net1']);
    await docker.cli(['network', 'create', '-d', 'bridge', 'br1']);

    const once = async (network: string): Promise<number> => {
      const t = process.hrtime.bigint();
      await docker.cli(['run', '--rm', '--network', network, DOCKER_IMAGE, 'true']);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const times: Record<'net1' | 'br1', number[]> = { net1: [], br1: [] };
    for (let i = 0; i < WARMUP + RUNS; i++) {
      for (const n of ['net1', 'br1'] as const) {
        const ms = await once(n);
        if (i >= WARMUP) times[n].push(ms);
      }
    }
    const p50 = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
    const weftP50 = p50(times.net1);
    const bridgeP50 = p50(times.br1);
    const ratio = weftP50 / bridgeP50;
    return {
      name: 'docker',
      lines: [
        `docker run --rm --network net1 (weft plugin) true, ${RUNS} runs: p50 ${weftP50.toFixed(0)} ms`,
        `docker run --rm --network br1 (Docker's bridge driver) true, ${RUNS} runs interleaved: p50 ${bridgeP50.toFixed(0)} ms`,
        `ratio weft/bridge p50 ${ratio.toFixed(2)} (goal ≤ 1.2)`,
      ],
      figures: { weftRunP50Ms: weftP50, bridgeRunP50Ms: bridgeP50, ratio },
    };
  } finally {
    await docker.teardown().catch(() => undefined);
    await removePluginSpec(host);
    await lab.destroy();
  }
}
