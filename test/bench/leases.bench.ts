// N simulated hosts (N = 1000, 5000) acquire subnets concurrently while one
// real weft agent watches and programs them all. Reports the time per lease
// against bare etcd create-if-absent transactions of the same count made in
// the same run (the floor any etcd-based design pays), when the watching
// agent held the complete set and when its kernel held every route (from its
// own log lines: no polling load on the agent). At 5000 it also reports the
// agent's idle RSS and CPU over 35 s (one --resync-interval pass of 15 000
// objects included) and how fast `weft leases` lists them, against
// `etcdctl get --prefix` of the same keys.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLab, UNDERLAY_GATEWAY, type LabHost } from '../lab/index.js';
import { startAgent, weft, REPO_ROOT } from '../lab/weft.js';
import { median, type BenchResult } from './types.js';

const COUNTS = [1000, 5000];
const IDLE_S = 35;

interface SimResult {
  distinct: number;
  weftMs: number;
  baselineMs: number;
  floorMs: number;
  p50: number;
  p99: number;
}

/** utime + stime of a process, in clock ticks, and its RSS in MiB. */
function procUsage(pid: number): { ticks: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { ticks, rssMiB: Number(rss?.[1] ?? NaN) / 1024 };
}

async function timed(host: LabHost, argv: string[], env?: Record<string, string>): Promise<number> {
  const t = performance.now();
  await host.exec(argv, env ? { env } : {});
  return performance.now() - t;
}

async function one(count: number): Promise<{ lines: string[]; figures: Record<string, number> }> {
  const lab = await createLab({ hosts: 2 });
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    const [h1, h2] = lab.hosts as [LabHost, LabHost];
    const set = await weft(h1, ['config', 'set', '{"Network":"10.0.0.0/8","SubnetLen":24}', '--etcd-endpoints', etcd]);
    if (set.code !== 0) throw new Error(set.stderr);
    const agent = await startAgent(h1, { dir: join(lab.tmpDir, 'watcher'), etcd, args: ['--iface', 'eth0', '--watch-check-interval', '30', '--resync-interval', '30'] });
    await agent.ready();

    const start = Date.now();
    const sim = h2.spawn([process.execPath, join(REPO_ROOT, 'dist/test/bench/lease-sim.js'), '--etcd', etcd, '--count', String(count), '--prefix', '/weft/network', '--hold'], { stdin: true });
    const out = await sim.waitForOutput(/\{"count".*\}/, 600_000);
    const r = JSON.parse(out[0]) as SimResult;
    if (r.distinct !== count) throw new Error(`only ${r.distinct} distinct subnets for ${count} hosts`);
    const held = await agent.proc.waitForOutput(new RegExp(`"time":(\\d+)[^\\n]*"leases":${count + 1},[^\\n]*"msg":"lease set"`), 600_000);
    const programmed = await agent.proc.waitForOutput(new RegExp(`"time":(\\d+)[^\\n]*"remotes":${count},[^\\n]*"msg":"vxlan (reconciled|already up to date)"`), 600_000);
    const watcherMs = Number(held[1]) - start;
    const programmedMs = Number(programmed[1]) - start;
    const ratio = r.weftMs / r.baselineMs;
    const lines = [
      `${count} simulated hosts acquired ${r.distinct} distinct subnets in ${r.weftMs.toFixed(0)} ms (${(r.weftMs / count).toFixed(2)} ms per lease; acquire latency p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms)`,
      `  baseline: ${count} bare etcd create-if-absent txns in ${r.baselineMs.toFixed(0)} ms; ratio weft/baseline ${ratio.toFixed(2)} (goal ≤ 2.0)`,
      `  floor: ${count} × (own etcd lease grant, then create-if-absent bound to it) in ${r.floorMs.toFixed(0)} ms, ${(r.floorMs / r.baselineMs).toFixed(2)} × the baseline; ratio weft/floor ${(r.weftMs / r.floorMs).toFixed(2)}`,
      `  the watching agent held all ${count + 1} leases ${watcherMs} ms after the start, and its kernel every route ${programmedMs} ms after`,
    ];
    const figures: Record<string, number> = { [`ratio_${count}`]: ratio, [`ms_per_lease_${count}`]: r.weftMs / count, [`baseline_ms_${count}`]: r.baselineMs, [`floor_ms_${count}`]: r.floorMs, [`ratio_floor_${count}`]: r.weftMs / r.floorMs, [`watcher_full_set_ms_${count}`]: watcherMs, [`programmed_ms_${count}`]: programmedMs };

    if (count === 5000) {
      await new Promise((res) => setTimeout(res, 2000));
      const u0 = procUsage(agent.proc.pid);
      await new Promise((res) => setTimeout(res, IDLE_S * 1000));
      const u1 = procUsage(agent.proc.pid);
      const cpuPct = ((u1.ticks - u0.ticks) / (IDLE_S * 100)) * 100; // CLK_TCK is 100 on Linux
      lines.push(`  the agent idle at ${count + 1} leases: RSS ${u1.rssMiB.toFixed(0)} MiB, CPU ${cpuPct.toFixed(2)} % of one core over ${IDLE_S} s (one resync pass of ${3 * count} objects included)`);
      figures['idle_rss_mib'] = u1.rssMiB;
      figures['idle_cpu_pct'] = cpuPct;

      const ctl = ['etcdctl', '--endpoints', etcd, 'get', '--prefix', '/weft/network/subnets/'];
      const leasesMs: number[] = [];
      const jsonMs: number[] = [];
      const ctlMs: number[] = [];
      for (let i = 0; i < 4; i++) {
        leasesMs.push(await timed(h2, [process.execPath, join(REPO_ROOT, 'dist/agent/cli.js'), 'leases', '--etcd-endpoints', etcd]));
        jsonMs.push(await timed(h2, [process.execPath, join(REPO_ROOT, 'dist/agent/cli.js'), 'leases', '--json', '--etcd-endpoints', etcd]));
        ctlMs.push(await timed(h2, ctl, { ETCDCTL_API: '3' }));
      }
      const [l, j, c] = [median(leasesMs.slice(1)), median(jsonMs.slice(1)), median(ctlMs.slice(1))];
      lines.push(`  weft leases (table) ${l.toFixed(0)} ms, --json ${j.toFixed(0)} ms; etcdctl get --prefix ${c.toFixed(0)} ms; ratio ${(l / c).toFixed(2)} (median of 3 after a warm-up)`);
      figures['weft_leases_ms'] = l;
      figures['weft_leases_json_ms'] = j;
      figures['etcdctl_get_ms'] = c;
    }
    sim.child.stdin?.end();
    await sim.stop(5000);
    return { lines, figures };
  } finally {
    await lab.destroy();
  }
}

export default async function leases(): Promise<BenchResult> {
  const lines: string[] = [];
  let figures: Record<string, number> = {};
  for (const count of COUNTS) {
    const r = await one(count);
    lines.push(...r.lines);
    figures = { ...figures, ...r.figures };
  }
  return { name: 'leases', lines, figures };
}

if (process.argv[1]?.endsWith('leases.bench.js')) {
  const r = await leases();
  for (const line of r.lines) console.log(line);
}
