// Attach latency: 100 sequential attaches, then 100 sequential detaches, of
// containers in one lab host, through the agent's API (HTTP over its unix
// socket, served in this process by the same code the agent runs), p50/p99.
// Baseline in the same run, on the same 100 namespaces: the reference CNI
// `bridge` + `host-local` plugins (/usr/lib/cni), ADD then DEL, each invoked
// the way a runtime does (exec, CNI_* env, config on stdin). The plugin has to
// run inside the host's namespace, so each call goes through `ip netns exec`;
// that wrapper's own cost (exec of /bin/true through it) is measured too and
// a ratio without it is reported, so the comparison is not flattered.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { socketPathOf, callAgent } from '../../agent/api/client.js';
import { startApiServer } from '../../agent/api/server.js';
import type { Attachment } from '../../agent/api/types.js';
import { startAttachments } from '../../agent/attachments/wire.js';
import { parseCidr } from '../../ipam/cidr.js';
import { createLab, run, type LabContainer } from '../lab/index.js';
import { percentile, type BenchResult } from './types.js';

const COUNT = 100;
const CNI_DIR = '/usr/lib/cni';

interface Stats {
  p50: number;
  p99: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

const fmt = (s: Stats): string => `p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`;

export default async function attachBench(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 1, etcd: false });
  try {
    const host = lab.hosts[0]!;
    await host.ipBatch(['link add weft0 type bridge', 'addr add 10.42.7.1/24 dev weft0', 'link set weft0 up']);
    const containers: LabContainer[] = [];
    for (let i = 0; i < COUNT; i += 25) containers.push(...(await Promise.all(Array.from({ length: 25 }, () => host.addContainer()))));

    // ---- weft, through the API socket ----
    const att = await startAttachments({
      stateDir: join(lab.tmpDir, 'state'),
      log: pino({ level: 'silent' }),
      netnsPath: host.netnsPath,
      network: () => ({ subnet: parseCidr('10.42.7.0/24'), mtu: 1450 }),
    });
    const runDir = join(lab.tmpDir, 'run');
    const server = await startApiServer(socketPathOf(runDir), att.routes, pino({ level: 'silent' }));
    let weftAttach: number[];
    let weftDetach: number[];
    try {
      const ips = new Set<string>();
      weftAttach = await timed(COUNT, async (i) => {
        const a = await callAgent<Attachment>(runDir, 'POST', '/v1/attach', { containerId: `b${i}`, netns: containers[i]!.netnsPath }, 30_000);
        ips.add(a.ip);
      });
      if (ips.size !== COUNT) throw new Error(`only ${ips.size} distinct addresses for ${COUNT} attaches`);
      weftDetach = await timed(COUNT, (i) => callAgent(runDir, 'POST', '/v1/detach', { containerId: `b${i}` }, 30_000));
    } finally {
      server.close();
      att.close();
    }

    // ---- baseline: reference CNI bridge + host-local ----
    const dataDir = join(lab.tmpDir, 'cni-ipam');
    await mkdir(dataDir, { recursive: true });
    const config = JSON.stringify({
      cniVersion: '0.4.0',
      name: 'bench',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: false,
      mtu: 1450,
      ipam: { type: 'host-local', subnet: '10.43.0.0/24', dataDir },
    });
    const cni = (command: 'ADD' | 'DEL', i: number) =>
      run(['ip', 'netns', 'exec', host.name, join(CNI_DIR, 'bridge')], {
        input: config,
        env: { CNI_COMMAND: command, CNI_CONTAINERID: `b${i}`, CNI_NETNS: containers[i]!.netnsPath, CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR },
      });
    const cniAdd = await timed(COUNT, (i) => cni('ADD', i));
    const cniDel = await timed(COUNT, (i) => cni('DEL', i));
    const wrapper = stats(await timed(COUNT, () => run(['ip', 'netns', 'exec', host.name, '/bin/true'])));

    const wa = stats(weftAttach);
    const wd = stats(weftDetach);
    const ca = stats(cniAdd);
    const cd = stats(cniDel);
    const ratio = wa.p50 / ca.p50;
    const ratioNoWrapper = wa.p50 / (ca.p50 - wrapper.p50);
    return {
      name: 'attach',
      lines: [
        `weft attach (API over unix socket), ${COUNT} sequential: ${fmt(wa)}`,
        `weft detach, ${COUNT} sequential: ${fmt(wd)}`,
        `baseline CNI bridge+host-local ADD: ${fmt(ca)}; DEL: ${fmt(cd)} (each through \`ip netns exec\`, itself ${fmt(wrapper)})`,
        `ratio weft/CNI attach p50 ${ratio.toFixed(2)} (${ratioNoWrapper.toFixed(2)} against CNI minus the exec wrapper); detach p50 ${(wd.p50 / cd.p50).toFixed(2)}`,
      ],
      figures: {
        attachP50Ms: wa.p50,
        attachP99Ms: wa.p99,
        detachP50Ms: wd.p50,
        detachP99Ms: wd.p99,
        cniAddP50Ms: ca.p50,
        cniAddP99Ms: ca.p99,
        cniDelP50Ms: cd.p50,
        cniDelP99Ms: cd.p99,
        execWrapperP50Ms: wrapper.p50,
        attachRatio: ratio,
        attachRatioNoWrapper: ratioNoWrapper,
        detachRatio: wd.p50 / cd.p50,
      },
    };
  } finally {
    await lab.destroy();
  }
}
