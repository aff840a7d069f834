// Data-plane throughput: iperf3 TCP container -> container across two lab
// hosts through the VXLAN that weft's backend programmed (driven in-process),
// divided by the same topology built by hand with `ip`/`bridge` on a second
// pair of hosts in the same run, and by the raw underlay veth between hosts.
// Both overlay paths are the same kernel path, so the goal is ≥ 0.97; less
// means weft set something up differently (an MTU, a missing offload).
// Median of 3 × 5 s each, the three measurements interleaved per round so
// that noise from the shared cores hits them alike.

import { formatIp, nthAddress } from '../../ipam/cidr.js';
import type { Lease } from '../../ipam/types.js';
import { deriveVtepMac } from '../../encap/vxlan/index.js';
import { createLab, run, type LabContainer, type LabHost } from '../lab/index.js';
import { byHandLinks, byHandRemotes, labBackend, vxlanLease } from './programming.bench.js';
import { median, type BenchResult } from './types.js';

const ROUNDS = 3;
const SECONDS = 5;

interface Side {
  client: LabContainer;
  serverIp: string;
  port: number;
}

/** A container on `host`'s weft0 with the subnet's second address and a default route via the gateway. */
async function container(host: LabHost, lease: Lease, n: number): Promise<{ c: LabContainer; ip: string }> {
  const c = await host.addContainer();
  const ip = formatIp(nthAddress(lease.subnet, 2));
  await host.ipBatch([`link add vc${n} mtu 1450 type veth peer name eth0 mtu 1450 netns ${c.name}`, `link set vc${n} master weft0 up`]);
  await c.ipBatch([`addr add ${ip}/${lease.subnet.len} dev eth0`, 'link set eth0 up', `route add default via ${formatIp(nthAddress(lease.subnet, 1))}`]);
  return { c, ip };
}

async function iperfServer(ns: LabHost | LabContainer, ip: string, port: number): Promise<void> {
  const p = ns.spawn(['iperf3', '-s', '-B', ip, '-p', String(port), '--forceflush']);
  await p.waitForOutput(/Server listening/);
}

/** Gbit/s received by the server. */
async function iperf(client: LabHost | LabContainer, ip: string, port: number): Promise<number> {
  const r = await client.exec(['iperf3', '-c', ip, '-p', String(port), '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 20) * 1000 });
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

/** Two hosts whose overlay weft's backend programs. */
async function weftPair(a: LabHost, b: LabHost): Promise<[Lease, Lease, () => Promise<void>]> {
  const [ba, bb] = [await labBackend(a), await labBackend(b)];
  const la = vxlanLease('10.42.1.0/24', a.ip, String((await ba.leaseData()).VtepMAC));
  const lb = vxlanLease('10.42.2.0/24', b.ip, String((await bb.leaseData()).VtepMAC));
  for (const [backend, local, remote] of [[ba, la, lb], [bb, lb, la]] as const) {
    const r = await backend.reconcile(local, [remote]);
    if (r.failed.length) throw new Error(`weft reconcile failed: ${JSON.stringify(r.failed)}`);
  }
  return [la, lb, async () => void (await Promise.all([ba.close(), bb.close()]))];
}

/** The same two hosts' worth of objects, made with `ip` and `bridge`. */
async function byHandPair(a: LabHost, b: LabHost): Promise<[Lease, Lease]> {
  const la = vxlanLease('10.42.3.0/24', a.ip, deriveVtepMac(a.ip, 1));
  const lb = vxlanLease('10.42.4.0/24', b.ip, deriveVtepMac(b.ip, 1));
  for (const [host, local, remote] of [[a, la, lb], [b, lb, la]] as const) {
    await host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await host.ipBatch(byHandLinks(host, local, String(local.attrs.backendData['VtepMAC'])));
    const lines = byHandRemotes([remote]);
    await run(['bridge', '-n', host.name, '-batch', '-'], { input: `${lines.fdb.join('\n')}\n` });
    await host.ipBatch(lines.ip);
  }
  return [la, lb];
}

export default async function throughput(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 4, etcd: false });
  try {
    const [h1, h2, h3, h4] = lab.hosts as [LabHost, LabHost, LabHost, LabHost];
    const [w1, w2, closeWeft] = await weftPair(h1, h2);
    const [m3, m4] = await byHandPair(h3, h4);
    let n = 0;
    const side = async (ha: LabHost, la: Lease, hb: LabHost, lb: Lease): Promise<Side> => {
      const client = await container(ha, la, ++n);
      const server = await container(hb, lb, ++n);
      await iperfServer(server.c, server.ip, 5201);
      return { client: client.c, serverIp: server.ip, port: 5201 };
    };
    const sides = { weft: await side(h1, w1, h2, w2), byHand: await side(h3, m3, h4, m4) };
    await iperfServer(h2, h2.ip, 5202);
    const got = { weft: [] as number[], byHand: [] as number[], underlay: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      got.weft.push(await iperf(sides.weft.client, sides.weft.serverIp, sides.weft.port));
      got.byHand.push(await iperf(sides.byHand.client, sides.byHand.serverIp, sides.byHand.port));
      got.underlay.push(await iperf(h1, h2.ip, 5202));
    }
    await closeWeft();
    const w = median(got.weft);
    const h = median(got.byHand);
    const u = median(got.underlay);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
    return {
      name: 'throughput',
      lines: [
        `iperf3 TCP, median of ${ROUNDS} × ${SECONDS} s, interleaved`,
        `weft vxlan (container -> container): ${w.toFixed(2)} Gbit/s  [${fmt(got.weft)}]`,
        `vxlan built by hand with ip/bridge:  ${h.toFixed(2)} Gbit/s  [${fmt(got.byHand)}]`,
        `raw underlay veth (host -> host):    ${u.toFixed(2)} Gbit/s  [${fmt(got.underlay)}]`,
        `ratio weft / by hand: ${(w / h).toFixed(3)} (goal ≥ 0.97); weft / underlay: ${(w / u).toFixed(3)}`,
      ],
      figures: { weft_gbps: w, by_hand_gbps: h, underlay_gbps: u, ratio: w / h, ratio_underlay: w / u },
    };
  } finally {
    await lab.destroy();
  }
}

// Runnable on its own: `node dist/test/bench/throughput.bench.js`.
if (process.argv[1]?.endsWith('throughput.bench.js')) {
  const r = await throughput();
  for (const line of r.lines) console.log(line);
}
