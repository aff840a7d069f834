// Kernel programming speed: N remote leases (N neighbours + N FDB entries +
// N onlink routes = 3N objects, N = 1000 and 5000) applied by the vxlan
// reconciler from empty, divided by the same objects loaded by hand with one
// `bridge -batch` plus one `ip -batch` (iproute2's fastest path, process
// start included). Each measurement gets a fresh lab host namespace whose
// bridge and VTEP already exist, so every side programs exactly the 3N
// objects. Per round, interleaved: weft warm (a backend in this process,
// after a warm-up round), weft cold (a fresh node process that does only
// this pass: the first pass after an agent starts, its module loading not
// counted), and by hand; medians are compared. Goal ≤ 1.2 both ways.
// Then the warm change: one lease of 5000 moves to another host; the kernel
// ops the pass issues (goal: exactly the changed objects) and its time, next
// to `bridge -batch` + `ip -batch` of just those objects.
//
// Also importable for its helpers by the throughput benchmark.

import { pino } from 'pino';
import { formatCidr, formatIp, nthAddress, parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { openNetlink } from '../../encap/netlink/index.js';
import type { SysctlWriter } from '../../encap/sysctl.js';
import { createVxlanBackend, deriveVtepMac, type VxlanBackend } from '../../encap/vxlan/index.js';
import { join } from 'node:path';
import { createLab, run, type LabHost } from '../lab/index.js';
import { REPO_ROOT } from '../lab/weft.js';
import { median, type BenchResult } from './types.js';

const SIZES: readonly { remotes: number; rounds: number }[] = [
  { remotes: 1000, rounds: 9 },
  { remotes: 5000, rounds: 5 },
];
const CHANGE_AMONG = 5000;
const CHANGE_ROUNDS = 9;

export const BENCH_CONFIG: NetworkConfig = parseNetworkConfig({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } });

/** A vxlan lease as weft publishes it. */
export function vxlanLease(subnet: string, publicIP: string, vtepMac: string): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType: 'vxlan', backendData: { VtepMAC: vtepMac } }, leaseId: '0', modRevision: 1 };
}

/** sysctl inside the lab host, never the root namespace's. */
export const hostSysctl = (host: LabHost): SysctlWriter => async (key, value) => void (await host.exec(['sysctl', '-qw', `${key}=${value}`]));

/** A vxlan backend working inside `host` through its own netlink socket; close() also closes that. */
export function labBackend(host: LabHost, sysctl: SysctlWriter = hostSysctl(host)): Promise<VxlanBackend> {
  return labBackendIn(host.netnsPath, host.iface, host.ip, sysctl);
}

/** The same, from the host's netns path, interface and address (for a child process). */
export async function labBackendIn(netnsPath: string, iface: string, ip: string, sysctl: SysctlWriter = async () => undefined): Promise<VxlanBackend> {
  const nl = await openNetlink({ netnsPath });
  const backend = createVxlanBackend({
    netlink: nl,
    config: BENCH_CONFIG,
    underlay: { iface, publicIP: ip, mtu: 1500 },
    sysctl,
    log: pino({ level: 'silent' }),
  });
  return {
    ...backend,
    async close() {
      await backend.close();
      nl.close();
    },
  };
}

/** Bridge and VTEP built by hand with `ip`, the way flannel/weft lays them out. */
export function byHandLinks(host: LabHost, local: Lease, vtepMac: string): string[] {
  const net = local.subnet;
  return [
    'link add weft0 mtu 1450 type bridge',
    `addr add ${formatIp(nthAddress(net, 1))}/${net.len} dev weft0`,
    'link set weft0 up',
    `link add weft.1 mtu 1450 address ${vtepMac} type vxlan id 1 local ${host.ip} dstport 8472 nolearning dev ${host.iface}`,
    `addr add ${formatIp(net.addr)}/32 dev weft.1`,
    'link set weft.1 up',
  ];
}

/** The `bridge -batch` and `ip -batch` lines that program `remotes` by hand. */
export function byHandRemotes(remotes: readonly Lease[]): { fdb: string[]; ip: string[] } {
  const fdb: string[] = [];
  const neigh: string[] = [];
  const routes: string[] = [];
  for (const r of remotes) {
    const vtepIp = formatIp(r.subnet.addr);
    const mac = String(r.attrs.backendData['VtepMAC']);
    fdb.push(`fdb append ${mac} dev weft.1 dst ${r.attrs.publicIP} self permanent`);
    neigh.push(`neigh replace ${vtepIp} lladdr ${mac} dev weft.1 nud permanent`);
    routes.push(`route replace ${vtepIp}/${r.subnet.len} via ${vtepIp} dev weft.1 onlink proto 87`);
  }
  return { fdb, ip: [...neigh, ...routes] };
}

export function remoteLeases(n: number): Lease[] {
  return Array.from({ length: n }, (_, i) => {
    const ip = `198.19.${i >> 8}.${i & 255}`;
    return vxlanLease(`10.${100 + (i >> 8)}.${i & 255}.0/24`, ip, deriveVtepMac(ip, 1));
  });
}

/** The local lease of a bench host. */
export function benchLocal(host: LabHost): Lease {
  return benchLocalFor(host.ip);
}

export function benchLocalFor(ip: string): Lease {
  return vxlanLease('10.42.1.0/24', ip, deriveVtepMac(ip, 1));
}

/** One pass from empty through an in-process backend (links made first, untimed). */
async function weftRound(host: LabHost, remotes: Lease[]): Promise<number> {
  // IP forwarding plays no part in programming objects; a no-op keeps a process spawn out of the timing.
  const backend = await labBackend(host, async () => undefined);
  try {
    const local = benchLocal(host);
    await backend.reconcile(local, []);
    const t = performance.now();
    const report = await backend.reconcile(local, remotes);
    const ms = performance.now() - t;
    if (report.failed.length || report.ops !== 3 * remotes.length) throw new Error(`weft pass: ${report.ops} ops, failures ${JSON.stringify(report.failed.slice(0, 3))}`);
    return ms;
  } finally {
    await backend.close();
  }
}

/** The same pass in a fresh node process (programming-pass.ts), which reports its own timing. */
async function coldRound(host: LabHost, n: number): Promise<number> {
  const r = await run([process.execPath, join(REPO_ROOT, 'dist/test/bench/programming-pass.js'), '--netns', host.netnsPath, '--iface', host.iface, '--ip', host.ip, '--count', String(n)]);
  const out = JSON.parse(r.stdout.trim()) as { ms: number; ops: number };
  if (out.ops !== 3 * n) throw new Error(`cold pass: ${out.ops} ops for ${n} remotes`);
  return out.ms;
}

async function byHandRound(host: LabHost, remotes: Lease[]): Promise<number> {
  await host.ipBatch(byHandLinks(host, vxlanLease('10.42.1.0/24', host.ip, ''), deriveVtepMac(host.ip, 1)));
  return byHandBatch(host, byHandRemotes(remotes));
}

async function byHandBatch(host: LabHost, lines: { fdb: string[]; ip: string[] }): Promise<number> {
  const t = performance.now();
  if (lines.fdb.length) await run(['bridge', '-n', host.name, '-batch', '-'], { input: `${lines.fdb.join('\n')}\n` });
  if (lines.ip.length) await run(['ip', '-n', host.name, '-batch', '-'], { input: `${lines.ip.join('\n')}\n` });
  return performance.now() - t;
}

async function countRoutes(host: LabHost): Promise<number> {
  const r = await host.exec(['ip', '-j', 'route', 'show', 'proto', '87']);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

const fmt = (xs: readonly number[]) => xs.map((x) => x.toFixed(1)).join(', ');

async function fromEmpty(lab: Awaited<ReturnType<typeof createLab>>, n: number, rounds: number): Promise<{ lines: string[]; figures: Record<string, number> }> {
  const remotes = remoteLeases(n);
  const warm: number[] = [];
  const cold: number[] = [];
  const byHand: number[] = [];
  // Round 0 warms up (the JIT for weft, the page cache for iproute2) and is reported, not counted.
  for (let round = 0; round <= rounds; round++) {
    const [a, b, c] = [await lab.addHost(), await lab.addHost(), await lab.addHost()];
    warm.push(await weftRound(a, remotes));
    cold.push(await coldRound(c, n));
    byHand.push(await byHandRound(b, remotes));
    const counts = [await countRoutes(a), await countRoutes(b), await countRoutes(c)];
    if (counts.some((x) => x !== n)) throw new Error(`expected ${n} routes on every host, got ${counts.join(', ')}`);
    await Promise.all([a, b, c].map((h) => h.exec(['ip', 'link', 'del', 'weft.1'])));
  }
  const w = median(warm.slice(1));
  const k = median(cold.slice(1));
  const h = median(byHand.slice(1));
  // Each round measures all three back to back, so its ratio shares the load of that moment.
  const pair = (xs: number[]) => median(xs.slice(1).map((x, i) => x / byHand[i + 1]!));
  return {
    lines: [
      `${n} remote leases = ${3 * n} kernel objects from empty, median of ${rounds} after a warm-up round, fresh netns each`,
      `  weft warm (read + plan + diff + apply): ${w.toFixed(1)} ms  [${fmt(warm.slice(1))}; first ${warm[0]!.toFixed(1)}]`,
      `  weft cold (fresh process, first pass):  ${k.toFixed(1)} ms  [${fmt(cold.slice(1))}]`,
      `  bridge -batch + ip -batch by hand:      ${h.toFixed(1)} ms  [${fmt(byHand.slice(1))}]`,
      `  ratio warm ${(w / h).toFixed(2)}, cold ${(k / h).toFixed(2)} (medians); per-round ${pair(warm).toFixed(2)} and ${pair(cold).toFixed(2)} (goal ≤ 1.2)`,
    ],
    figures: { [`weft_warm_ms_${3 * n}`]: w, [`weft_cold_ms_${3 * n}`]: k, [`by_hand_ms_${3 * n}`]: h, [`ratio_warm_${3 * n}`]: w / h, [`ratio_cold_${3 * n}`]: k / h },
  };
}

/** One lease among CHANGE_AMONG moves to another host: what the next pass writes, and how long it takes. */
async function oneChanged(lab: Awaited<ReturnType<typeof createLab>>): Promise<{ lines: string[]; figures: Record<string, number> }> {
  const remotes = remoteLeases(CHANGE_AMONG);
  const [a, b] = [await lab.addHost(), await lab.addHost()];
  const backend = await labBackend(a, async () => undefined);
  try {
    const local = benchLocal(a);
    await backend.reconcile(local, remotes);
    await byHandRound(b, remotes);
    const idle = await backend.reconcile(local, remotes);
    const weft: number[] = [];
    const byHand: number[] = [];
    const ops: number[] = [];
    // Alternate the 2500th lease between its host and another, so every round is a real change.
    const i = 2500;
    const orig = remotes[i]!;
    for (let round = 0; round < CHANGE_ROUNDS; round++) {
      const ip = round % 2 === 0 ? '198.20.0.1' : orig.attrs.publicIP;
      const moved = vxlanLease(formatCidr(orig.subnet), ip, deriveVtepMac(ip, 1));
      const before = remotes[i]!;
      const set = remotes.map((r, j) => (j === i ? moved : r));
      const t = performance.now();
      const report = await backend.reconcile(local, set);
      weft.push(performance.now() - t);
      ops.push(report.ops);
      if (report.failed.length) throw new Error(`change pass failed: ${JSON.stringify(report.failed)}`);
      // By hand: the same objects an operator would write for the move.
      const mac = String(moved.attrs.backendData['VtepMAC']);
      const oldMac = String(before.attrs.backendData['VtepMAC']);
      byHand.push(
        await byHandBatch(b, {
          fdb: [`fdb append ${mac} dev weft.1 dst ${ip} self permanent`, `fdb del ${oldMac} dev weft.1 self`],
          ip: [`neigh replace ${formatIp(orig.subnet.addr)} lladdr ${mac} dev weft.1 nud permanent`],
        }),
      );
      remotes[i] = moved;
    }
    const w = median(weft);
    const h = median(byHand);
    return {
      lines: [
        `one lease of ${CHANGE_AMONG} moved to another host (${CHANGE_ROUNDS} rounds): kernel ops per pass ${[...new Set(ops)].join('/')} (the changed objects: neighbour replaced, FDB entry added, old FDB entry removed); an unchanged pass issues ${idle.ops}`,
        `  weft pass (dump ${3 * CHANGE_AMONG} objects + plan + diff + apply): ${w.toFixed(1)} ms  [${fmt(weft)}]; unchanged pass ${idle.ms.toFixed(1)} ms`,
        `  bridge -batch + ip -batch of only the changed objects: ${h.toFixed(1)} ms; ratio ${(w / h).toFixed(2)}`,
      ],
      figures: { change_ops: median(ops), change_ms: w, change_by_hand_ms: h, change_ratio: w / h, idle_ops: idle.ops, idle_ms: idle.ms },
    };
  } finally {
    await backend.close();
  }
}

export default async function programming(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 0, etcd: false });
  try {
    const lines: string[] = [];
    let figures: Record<string, number> = {};
    for (const { remotes, rounds } of SIZES) {
      const r = await fromEmpty(lab, remotes, rounds);
      lines.push(...r.lines);
      figures = { ...figures, ...r.figures };
    }
    const c = await oneChanged(lab);
    lines.push(...c.lines);
    return { name: 'programming', lines, figures: { ...figures, ...c.figures } };
  } finally {
    await lab.destroy();
  }
}

// Runnable on its own: `node dist/test/bench/programming.bench.js`.
if (process.argv[1]?.endsWith('programming.bench.js')) {
  const r = await programming();
  for (const line of r.lines) console.log(line);
}
