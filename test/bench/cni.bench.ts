// CNI ADD/DEL latency: weft-cni (the C relay → the agent over its unix
// socket → veth + address) against the reference bridge + host-local, in the
// same run, each in its own lab host. 100 sequential ADDs (one fresh
// container namespace each), then 100 sequential DELs, calls of the two
// plugins interleaved so both see the same machine; then 20 parallel ADDs
// per plugin (wall time). Every call is timed inside the host namespace by
// a small driver that spawns the plugin (test/integration/support/cni.ts),
// from spawn until the plugin's stdout closes, as a runtime waits for it.
// Also reported: weft STATUS, the relay + agent round trip with no kernel
// work, which is the floor under weft's ADD.
// Usage: npm run build && node dist/test/bench/run.js cni

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, UNDERLAY_GATEWAY, type LabHost } from '../lab/index.js';
import { startAgent, weft } from '../lab/weft.js';
import {
  installRelay,
  ReferencePlugin,
  startTimedRunner,
  WeftPlugin,
  type CniCall,
  type CniPlugin,
  type CniRunner,
} from '../integration/support/cni.js';
import { percentile, type BenchResult } from './types.js';

const SEQUENTIAL = 100;
const PARALLEL = 20;
const VERSION = '1.0.0';

interface Figures {
  add: number[];
  del: number[];
  parallelMs: number;
}

/** One successful call's time, as the driver in the host measured it. */
async function timed(p: CniPlugin, call: CniCall): Promise<number> {
  const r = await p.call(call);
  if (r.code !== 0) throw new Error(`${p.label} ${call.command} ${call.containerId ?? ''}: exit ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.ms;
}

function attach(p: CniPlugin, id: string, netns: string, command: 'ADD' | 'DEL'): CniCall {
  return { command, containerId: id, netns, ifname: 'eth0', config: p.config(VERSION) };
}

async function containers(host: LabHost, n: number): Promise<string[]> {
  const paths: string[] = [];
  // Batches of 10: `ip netns add` is quick, but a hundred at once only queue on the two cores.
  for (let i = 0; i < n; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => host.addContainer()));
    paths.push(...batch.map((c) => c.netnsPath));
  }
  return paths;
}

const sortedCopy = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
const p50 = (xs: readonly number[]): number => percentile(sortedCopy(xs), 50);
const p99 = (xs: readonly number[]): number => percentile(sortedCopy(xs), 99);
const ms = (x: number): string => `${x.toFixed(1)} ms`;

export default async function cni(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 2 });
  const runners: CniRunner[] = [];
  try {
    const [h1, h2] = lab.hosts as [LabHost, LabHost];
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    const set = await weft(h1, ['config', 'set', '{"Network":"10.42.0.0/16"}', '--etcd-endpoints', etcd]);
    if (set.code !== 0) throw new Error(set.stderr);
    const binDir = join(lab.tmpDir, 'cni-bin');
    await installRelay(binDir);
    const agent = await startAgent(h1, { dir: join(lab.tmpDir, 'agent'), etcd, args: ['--iface', 'eth0', '--log-level', 'warn'] });
    const { subnet } = await agent.ready();
    const dataDir = join(lab.tmpDir, 'host-local');
    await mkdir(dataDir, { recursive: true });
    const [wr, rr] = await Promise.all([startTimedRunner(h1), startTimedRunner(h2)]);
    runners.push(wr, rr);
    const plugins: [CniPlugin, CniPlugin] = [new WeftPlugin(h1, binDir, wr, agent.runDir, subnet!), new ReferencePlugin(h2, rr, dataDir)];
    const netns = [await containers(h1, SEQUENTIAL + 1), await containers(h2, SEQUENTIAL + 1)];
    const figures: [Figures, Figures] = [
      { add: [], del: [], parallelMs: 0 },
      { add: [], del: [], parallelMs: 0 },
    ];

    // Warm-up (page cache, the agent's first netlink calls), not counted.
    for (const [k, p] of plugins.entries()) {
      await timed(p, attach(p, 'warmup', netns[k]![SEQUENTIAL]!, 'ADD'));
      await timed(p, attach(p, 'warmup', netns[k]![SEQUENTIAL]!, 'DEL'));
    }
    for (const command of ['ADD', 'DEL'] as const) {
      for (let i = 0; i < SEQUENTIAL; i++) {
        for (const [k, p] of plugins.entries()) {
          const t = await timed(p, attach(p, `seq-${i}`, netns[k]![i]!, command));
          (command === 'ADD' ? figures[k]!.add : figures[k]!.del).push(t);
        }
      }
    }
    // DEL removed every interface, so the first PARALLEL namespaces are free again.
    for (const [k, p] of plugins.entries()) {
      const start = performance.now();
      await Promise.all(Array.from({ length: PARALLEL }, (_, i) => timed(p, attach(p, `par-${i}`, netns[k]![i]!, 'ADD'))));
      figures[k]!.parallelMs = performance.now() - start;
      for (let i = 0; i < PARALLEL; i++) await timed(p, attach(p, `par-${i}`, netns[k]![i]!, 'DEL'));
    }
    const status: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) status.push(await timed(plugins[0], { command: 'STATUS', config: plugins[0].config('1.1.0') }));

    const [w, r] = figures;
    const ratio = p50(w.add) / p50(r.add);
    const row = (label: string, f: Figures): string =>
      `${label.padEnd(22)} ADD p50 ${ms(p50(f.add))}, p99 ${ms(p99(f.add))} | DEL p50 ${ms(p50(f.del))}, p99 ${ms(p99(f.del))} | ${PARALLEL} parallel ADDs ${ms(f.parallelMs)}`;
    return {
      name: 'cni',
      lines: [
        `${SEQUENTIAL} sequential ADDs then DELs per plugin (interleaved), ${PARALLEL} parallel ADDs; cniVersion ${VERSION}; timed in the host namespace from spawn to stdout closed`,
        row('weft-cni (relay+agent)', w),
        row('bridge + host-local', r),
        `weft STATUS (relay + agent round trip, no kernel work) p50 ${ms(p50(status))}, p99 ${ms(p99(status))}`,
        `ratio ADD p50 weft/reference ${ratio.toFixed(2)} (goal <= 1.5); DEL p50 ${(p50(w.del) / p50(r.del)).toFixed(2)}; ${PARALLEL} parallel ${(w.parallelMs / r.parallelMs).toFixed(2)}`,
      ],
      figures: {
        weftAddP50: p50(w.add),
        weftAddP99: p99(w.add),
        weftDelP50: p50(w.del),
        weftDelP99: p99(w.del),
        weftParallelMs: w.parallelMs,
        refAddP50: p50(r.add),
        refAddP99: p99(r.add),
        refDelP50: p50(r.del),
        refDelP99: p99(r.del),
        refParallelMs: r.parallelMs,
        weftStatusP50: p50(status),
        ratioAddP50: ratio,
        ratioDelP50: p50(w.del) / p50(r.del),
        ratioParallel: w.parallelMs / r.parallelMs,
      },
    };
  } finally {
    for (const r of runners) await r.close().catch(() => undefined);
    await lab.destroy();
  }
}
