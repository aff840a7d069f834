// Kernel programming speed: 1000 remote leases (1000 neighbours + 1000 FDB
// entries + 1000 onlink routes = 3000 objects) applied by the vxlan
// reconciler from empty, divided by the same objects loaded by hand with one
// `bridge -batch` plus one `ip -batch` (iproute2's fastest path, process
// start included). Each measurement gets a fresh lab host namespace whose
// bridge and VTEP already exist, so both sides program exactly the 3000
// objects. Rounds alternate weft and baseline; medians are compared. Goal ≤ 1.5.
//
// Also importable for its helpers by the throughput benchmark.

import { pino } from 'pino';
import { formatIp, nthAddress, parseCidr } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { openNetlink } from '../../encap/netlink/index.js';
import type { SysctlWriter } from '../../encap/sysctl.js';
import { createVxlanBackend, deriveVtepMac, type VxlanBackend } from '../../encap/vxlan/index.js';
import { createLab, run, type LabHost } from '../lab/index.js';
import { median, type BenchResult } from './types.js';

const REMOTES = 1000;
const ROUNDS = 9;

export const BENCH_CONFIG: NetworkConfig = parseNetworkConfig({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } });

/** A vxlan lease as weft publishes it. */
export function vxlanLease(subnet: string, publicIP: string, vtepMac: string): Lease {
  return { subnet: parseCidr(subnet), attrs: { publicIP, backendType: 'vxlan', backendData: { VtepMAC: vtepMac } }, leaseId: '0', modRevision: 1 };
}

/** sysctl inside the lab host, never the root namespace's. */
export const hostSysctl = (host: LabHost): SysctlWriter => async (key, value) => void (await host.exec(['sysctl', '-qw', `${key}=${value}`]));

/** A vxlan backend working inside `host` through its own netlink socket; close() also closes that. */
export async function labBackend(host: LabHost, sysctl: SysctlWriter = hostSysctl(host)): Promise<VxlanBackend> {
  const nl = await openNetlink({ netnsPath: host.netnsPath });
  const backend = createVxlanBackend({
    netlink: nl,
    config: BENCH_CONFIG,
    underlay: { iface: host.iface, publicIP: host.ip, mtu: 1500 },
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

function remoteLeases(): Lease[] {
  return Array.from({ length: REMOTES }, (_, i) => {
    const ip = `198.19.${i >> 8}.${i & 255}`;
    return vxlanLease(`10.${100 + (i >> 8)}.${i & 255}.0/24`, ip, deriveVtepMac(ip, 1));
  });
}

async function weftRound(host: LabHost, local: Lease, remotes: Lease[]): Promise<number> {
  // IP forwarding plays no part in programming objects; a no-op keeps a process spawn out of the timing.
  const backend = await labBackend(host, async () => undefined);
  try {
    await backend.reconcile(local, []);
    const t = performance.now();
    const report = await backend.reconcile(local, remotes);
    const ms = performance.now() - t;
    if (report.failed.length || report.ops !== 3 * REMOTES) throw new Error(`weft pass: ${report.ops} ops, failures ${JSON.stringify(report.failed.slice(0, 3))}`);
    return ms;
  } finally {
    await backend.close();
  }
}

async function byHandRound(host: LabHost, local: Lease, remotes: Lease[]): Promise<number> {
  await host.ipBatch(byHandLinks(host, local, deriveVtepMac(host.ip, 1)));
  const lines = byHandRemotes(remotes);
  const t = performance.now();
  await run(['bridge', '-n', host.name, '-batch', '-'], { input: `${lines.fdb.join('\n')}\n` });
  await run(['ip', '-n', host.name, '-batch', '-'], { input: `${lines.ip.join('\n')}\n` });
  return performance.now() - t;
}

async function countRoutes(host: LabHost): Promise<number> {
  const r = await host.exec(['ip', '-j', 'route', 'show', 'proto', '87']);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

export default async function programming(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 0, etcd: false });
  try {
    const remotes = remoteLeases();
    const weft: number[] = [];
    const byHand: number[] = [];
    // Round 0 warms up (the JIT for weft, the page cache for iproute2) and is reported, not counted.
    for (let round = 0; round <= ROUNDS; round++) {
      const [a, b] = [await lab.addHost(), await lab.addHost()];
      const local = vxlanLease('10.42.1.0/24', a.ip, deriveVtepMac(a.ip, 1));
      weft.push(await weftRound(a, local, remotes));
      byHand.push(await byHandRound(b, vxlanLease('10.42.1.0/24', b.ip, ''), remotes));
      const [na, nb] = [await countRoutes(a), await countRoutes(b)];
      if (na !== REMOTES || nb !== REMOTES) throw new Error(`expected ${REMOTES} routes on both hosts, got ${na} and ${nb}`);
      await Promise.all([a.exec(['ip', 'link', 'del', 'weft.1']), b.exec(['ip', 'link', 'del', 'weft.1'])]);
    }
    const w = median(weft.slice(1));
    const h = median(byHand.slice(1));
    // Each round measures both back to back, so its ratio shares the load of that moment.
    const pairRatio = median(weft.slice(1).map((x, i) => x / byHand[i + 1]!));
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
    return {
      name: 'programming',
      lines: [
        `${REMOTES} remote leases = ${3 * REMOTES} kernel objects, median of ${ROUNDS} after a warm-up round, fresh netns each`,
        `weft reconciler (read + plan + diff + apply): ${w.toFixed(1)} ms  [${fmt(weft.slice(1))}; cold first pass ${weft[0]!.toFixed(1)}]`,
        `bridge -batch + ip -batch by hand:           ${h.toFixed(1)} ms  [${fmt(byHand.slice(1))}; first ${byHand[0]!.toFixed(1)}]`,
        `ratio weft / by hand: ${(w / h).toFixed(2)} of the medians, ${pairRatio.toFixed(2)} median of per-round ratios (goal ≤ 1.5)`,
      ],
      figures: { weft_ms: w, by_hand_ms: h, ratio: w / h, pair_ratio: pairRatio, weft_cold_ms: weft[0]! },
    };
  } finally {
    await lab.destroy();
  }
}

// Runnable on its own: `node dist/test/bench/programming.bench.js`.
if (process.argv[1]?.endsWith('programming.bench.js')) {
  const r = await programming();
  for (const line of r.lines) console.log(line);
}
