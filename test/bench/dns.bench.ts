// DNS: queries per second and latency of weft's DNS server for cluster names,
// against dnsmasq serving the same 1000 names, both driven by dnsperf in the
// same lab host in the same run, interleaved (weft, dnsmasq, weft, …), each
// on the bridge gateway address (weft on port 53, dnsmasq on 5353). p99 comes
// from dnsperf's per-query report (-v). Then propagation: 50 containers
// attached one after another on host 1; for each, the time from the attach
// reply until hosts 2 and 3 both answer its name (their agents' record sets,
// polled every 5 ms over their API sockets), p50/p99.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { callAgent } from '../../agent/api/client.js';
import type { Attachment } from '../../agent/api/types.js';
import { createLab, type LabProcess, UNDERLAY_GATEWAY } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';
import { percentile, type BenchResult } from './types.js';

const NAMES = 1000;
const ROUNDS = 3;
const SECONDS = 4;
// DNS_BENCH_PROPAGATION overrides the count (a quick look while developing).
const PROPAGATION = Number(process.env["DNS_BENCH_PROPAGATION"] ?? 50);

interface PerfRun {
  qps: number;
  p50: number;
  p99: number;
  lost: number;
}

function parseDnsperf(out: string): PerfRun {
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  // -v lines: "> NOERROR name.weft.local A 0.000123"
  const lat = [...out.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  return { qps, lost, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

const ms = (x: number): string => `${x.toFixed(3)} ms`;

export default async function dnsBench(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 3 });
  const agents: WeftAgent[] = [];
  let dnsmasq: LabProcess | undefined;
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', etcd]);
    for (const [i, host] of lab.hosts.entries()) {
      agents.push(await startAgent(host, { dir: join(lab.tmpDir, `agent-${i + 1}`), etcd, args: ['--iface', 'eth0', '--log-level', 'warn', '--dns-upstream', `${UNDERLAY_GATEWAY}:53`] }));
    }
    const dnsUp = (s: unknown): boolean => ((s as { dns?: { listening: string[] } }).dns?.listening.length ?? 0) > 0;
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 3 && dnsUp(s), 'ready with DNS', 30_000)));
    const host = lab.hosts[0]!;
    const gw = ((await agents[0]!.status()).subnet ?? '').replace(/0\/24$/, '1');

    // The same 1000 names in both servers.
    const hosts: string[] = [];
    const queries: string[] = [];
    for (let i = 0; i < NAMES; i++) {
      const ip = `10.99.${Math.floor(i / 250)}.${(i % 250) + 2}`;
      await callAgent(agents[0]!.runDir, 'POST', '/v1/dns/add', { name: `name${i}`, ip });
      hosts.push(`${ip} name${i}.weft.local`);
      queries.push(`name${i}.weft.local A`);
    }
    const hostsFile = join(lab.tmpDir, 'dnsmasq.hosts');
    const queryFile = join(lab.tmpDir, 'queries.txt');
    await writeFile(hostsFile, hosts.join('\n') + '\n');
    await writeFile(queryFile, queries.join('\n') + '\n');
    dnsmasq = host.spawn(['dnsmasq', '-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, '--user=root', `--listen-address=${gw}`, '--bind-interfaces', '--port=5353', '--cache-size=10000', '--local-ttl=5', '--pid-file=']);
    await new Promise((r) => setTimeout(r, 500));

    const perf = async (port: number): Promise<PerfRun> => {
      const r = await host.exec(['dnsperf', '-s', gw, '-p', String(port), '-d', queryFile, '-l', String(SECONDS), '-v'], { timeoutMs: (SECONDS + 30) * 1000 });
      return parseDnsperf(r.stdout);
    };
    const weftRuns: PerfRun[] = [];
    const baseRuns: PerfRun[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      weftRuns.push(await perf(53));
      baseRuns.push(await perf(5353));
    }
    const med = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
    const w = { qps: med(weftRuns.map((r) => r.qps)), p50: med(weftRuns.map((r) => r.p50)), p99: med(weftRuns.map((r) => r.p99)) };
    const b = { qps: med(baseRuns.map((r) => r.qps)), p50: med(baseRuns.map((r) => r.p50)), p99: med(baseRuns.map((r) => r.p99)) };

    // Propagation.
    const containers = await Promise.all(Array.from({ length: PROPAGATION }, (_, i) => host.addContainer(`p${i}`)));
    const delays: number[] = [];
    const seen = async (agent: WeftAgent, name: string): Promise<boolean> => {
      const list = await callAgent<{ records: { name: string; visible: boolean }[] }>(agent.runDir, 'GET', '/v1/dns');
      return list.records.some((r) => r.name === name && r.visible);
    };
    for (const [i, c] of containers.entries()) {
      const name = `prop${i}`;
      await callAgent<Attachment>(agents[0]!.runDir, 'POST', '/v1/attach', { containerId: `prop-${i}`, netns: c.netnsPath, name }, 30_000);
      const t0 = performance.now();
      const pending = new Set([agents[1]!, agents[2]!]);
      const deadline = t0 + 10_000;
      while (pending.size > 0 && performance.now() < deadline) {
        for (const a of [...pending]) if (await seen(a, name)) pending.delete(a);
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 5));
      }
      delays.push(pending.size === 0 ? performance.now() - t0 : Infinity);
    }
    delays.sort((x, y) => x - y);
    const prop = { p50: percentile(delays, 50), p99: percentile(delays, 99), missed: delays.filter((d) => !Number.isFinite(d)).length };

    return {
      name: 'dns',
      lines: [
        `cluster names (${NAMES}), dnsperf ${SECONDS} s × ${ROUNDS} rounds interleaved, medians:`,
        `  weft:    ${w.qps.toFixed(0)} q/s, p50 ${ms(w.p50)}, p99 ${ms(w.p99)} (lost ${weftRuns.map((r) => r.lost).join('/')})`,
        `  dnsmasq: ${b.qps.toFixed(0)} q/s, p50 ${ms(b.p50)}, p99 ${ms(b.p99)} (lost ${baseRuns.map((r) => r.lost).join('/')})`,
        `  ratio weft/dnsmasq: QPS ${(w.qps / b.qps).toFixed(2)} (goal ≥ 1.0), p99 ${(w.p99 / b.p99).toFixed(2)} (goal ≤ 1.0)`,
        `propagation, attach on host 1 → answered on hosts 2 and 3, ${PROPAGATION} names: p50 ${ms(prop.p50)}, p99 ${ms(prop.p99)} (goal p99 < 500 ms)${prop.missed ? `, ${prop.missed} not within 10 s` : ''}`,
      ],
      figures: { weftQps: w.qps, dnsmasqQps: b.qps, qpsRatio: w.qps / b.qps, weftP99Ms: w.p99, dnsmasqP99Ms: b.p99, p99Ratio: w.p99 / b.p99, propagationP50Ms: prop.p50, propagationP99Ms: prop.p99 },
    };
  } finally {
    await dnsmasq?.stop();
    for (const a of agents) await a.proc.stop();
    await lab.destroy();
  }
}
