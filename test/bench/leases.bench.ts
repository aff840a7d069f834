// 1000 simulated hosts acquire subnets concurrently while one real weft agent
// watches; reports the time per lease, the time until the watcher holds the
// full set, and the ratio against bare etcd create-if-absent transactions of
// the same count made in the same run (the floor any etcd-based design pays).

import { join } from 'node:path';
import { createLab, UNDERLAY_GATEWAY } from '../lab/index.js';
import { startAgent, weft, REPO_ROOT } from '../lab/weft.js';
import type { BenchResult } from './types.js';

const COUNT = 1000;

export default async function leases(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 2 });
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    const [h1, h2] = lab.hosts as [NonNullable<(typeof lab.hosts)[0]>, NonNullable<(typeof lab.hosts)[0]>];
    const set = await weft(h1, ['config', 'set', '{"Network":"10.0.0.0/8","SubnetLen":24}', '--etcd-endpoints', etcd]);
    if (set.code !== 0) throw new Error(set.stderr);
    const agent = await startAgent(h1, { dir: join(lab.tmpDir, 'watcher'), etcd, args: ['--iface', 'eth0', '--log-level', 'warn'] });
    await agent.ready();

    const start = Date.now();
    const sim = h2.exec([process.execPath, join(REPO_ROOT, 'dist/test/bench/lease-sim.js'), '--etcd', etcd, '--count', String(COUNT), '--prefix', '/weft/network'], {
      timeoutMs: 600_000,
    });
    // Poll the watcher until it holds every simulated lease plus its own.
    let watcherMs = NaN;
    const deadline = Date.now() + 600_000;
    while (Date.now() < deadline) {
      const st = await agent.status();
      if (st.leases.length >= COUNT + 1) {
        watcherMs = Date.now() - start;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = JSON.parse((await sim).stdout.trim().split('\n').pop()!) as { distinct: number; weftMs: number; baselineMs: number; p50: number; p99: number };
    if (r.distinct !== COUNT) throw new Error(`only ${r.distinct} distinct subnets for ${COUNT} hosts`);
    const ratio = r.weftMs / r.baselineMs;
    return {
      name: 'leases',
      lines: [
        `${COUNT} simulated hosts acquired ${r.distinct} distinct subnets in ${r.weftMs.toFixed(0)} ms (${(r.weftMs / COUNT).toFixed(2)} ms per lease; acquire latency p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms)`,
        `the watching agent held all ${COUNT + 1} leases ${watcherMs.toFixed(0)} ms after the start`,
        `baseline: ${COUNT} bare etcd create-if-absent txns in ${r.baselineMs.toFixed(0)} ms; ratio weft/baseline ${ratio.toFixed(2)}`,
      ],
      figures: { msPerLease: r.weftMs / COUNT, totalMs: r.weftMs, watcherFullSetMs: watcherMs, baselineMs: r.baselineMs, ratio, p50: r.p50, p99: r.p99 },
    };
  } finally {
    await lab.destroy();
  }
}
