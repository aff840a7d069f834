// Agent start to full data plane: 1000 leases of other hosts are already in
// etcd (held by simulated hosts, lease-sim.ts --hold); `weft agent` starts on
// a lab host whose kernel holds nothing of weft's, and the time runs from the
// spawn to the agent's "data plane programmed" log line (its own clock; the
// pass that logs it has put the last route in the kernel). Baseline, same
// run, interleaved: `node -e 0` (the runtime's own start) plus `bridge -batch`
// and `ip -batch` of the same 3000 objects. Reports the ratio.

import { join } from 'node:path';
import { createLab, run, UNDERLAY_GATEWAY, type LabHost } from '../lab/index.js';
import { REPO_ROOT, WeftAgent, weft } from '../lab/weft.js';
import { byHandLinks, byHandRemotes, vxlanLease } from './programming.bench.js';
import { median, type BenchResult } from './types.js';
import { deriveVtepMac } from '../../encap/vxlan/index.js';
import type { Lease } from '../../ipam/types.js';

const COUNT = 1000;
const ROUNDS = 5;

interface LeaseJson {
  subnet: string;
  publicIP: string;
  backendData: { VtepMAC?: string };
}

async function fresh(host: LabHost): Promise<void> {
  for (const dev of ['weft.1', 'weft0']) await host.exec(['ip', 'link', 'del', dev], { allowFail: true });
}

export default async function agentStart(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 3 });
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    const [a, b, sim] = lab.hosts as [LabHost, LabHost, LabHost];
    const set = await weft(a, ['config', 'set', '{"Network":"10.0.0.0/8","SubnetLen":24}', '--etcd-endpoints', etcd]);
    if (set.code !== 0) throw new Error(set.stderr);
    const holder = sim.spawn([process.execPath, join(REPO_ROOT, 'dist/test/bench/lease-sim.js'), '--etcd', etcd, '--count', String(COUNT), '--prefix', '/weft/network', '--hold'], { stdin: true });
    await holder.waitForOutput(/"distinct":/, 600_000);
    // The same leases by hand: read them back as the agent will see them.
    const listed = await weft(a, ['leases', '--json', '--etcd-endpoints', etcd]);
    const remotes: Lease[] = (JSON.parse(listed.stdout) as LeaseJson[]).map((l) => vxlanLease(l.subnet, l.publicIP, String(l.backendData.VtepMAC)));
    if (remotes.length !== COUNT) throw new Error(`expected ${COUNT} leases in etcd, found ${remotes.length}`);

    const agentMs: number[] = [];
    const baseMs: number[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      await fresh(a);
      const agent = new WeftAgent(a, { dir: join(lab.tmpDir, `agent-${round}`), etcd, args: ['--iface', 'eth0', '--log-level', 'info'] });
      const t0 = Date.now();
      await agent.start();
      const m = await agent.proc.waitForOutput(/"time":(\d+)[^\n]*"msg":"data plane programmed"/, 120_000);
      agentMs.push(Number(m[1]) - t0);
      const routes = JSON.parse((await a.exec(['ip', '-j', 'route', 'show', 'proto', '87'])).stdout) as unknown[];
      if (routes.length !== COUNT) throw new Error(`agent programmed ${routes.length} routes, expected ${COUNT}`);
      await agent.proc.stop();

      await fresh(b);
      await b.ipBatch(byHandLinks(b, vxlanLease('10.42.1.0/24', b.ip, ''), deriveVtepMac(b.ip, 1)));
      const lines = byHandRemotes(remotes);
      const t1 = performance.now();
      await run([process.execPath, '-e', '0']);
      await run(['bridge', '-n', b.name, '-batch', '-'], { input: `${lines.fdb.join('\n')}\n` });
      await run(['ip', '-n', b.name, '-batch', '-'], { input: `${lines.ip.join('\n')}\n` });
      baseMs.push(performance.now() - t1);
    }
    holder.child.stdin?.end();
    await holder.stop(5000);
    // Round 0 warms the page cache for both sides and is not counted.
    const w = median(agentMs.slice(1));
    const h = median(baseMs.slice(1));
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    return {
      name: 'agent-start',
      lines: [
        `weft agent start → data plane programmed with ${COUNT} leases in etcd (${3 * COUNT} objects), median of ${ROUNDS}: ${w.toFixed(0)} ms [${fmt(agentMs.slice(1))}; first ${agentMs[0]!.toFixed(0)}]`,
        `baseline node -e 0 + bridge -batch + ip -batch of the same objects: ${h.toFixed(0)} ms [${fmt(baseMs.slice(1))}]`,
        `ratio ${(w / h).toFixed(2)}`,
      ],
      figures: { agent_start_ms: w, baseline_ms: h, ratio: w / h },
    };
  } finally {
    await lab.destroy();
  }
}

if (process.argv[1]?.endsWith('agent-start.bench.js')) {
  const r = await agentStart();
  for (const line of r.lines) console.log(line);
}
