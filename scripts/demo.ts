// The README's demo: three "hosts" made of network namespaces on this
// machine, a local etcd, a weft agent on each host, and two containers per
// host attached with `weft attach`. Shows the hosts leasing distinct subnets,
// every container pinging every other across hosts through kernel VXLAN, and
// a container reaching one on another host by its name (gossip DNS).
// Everything runs inside namespaces it creates; all is removed on exit or Ctrl-C.
// Usage: node dist/scripts/demo.js [--keep]   (--keep waits for Ctrl-C)

import { join } from 'node:path';
import { createLab, dig, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabContainer } from '../test/lab/index.js';
import { startAgent, weft, type WeftAgent } from '../test/lab/weft.js';

const HOSTS = 3;
const keep = process.argv.includes('--keep');

function step(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

function show(cmd: string, out: string): void {
  console.log(`$ ${cmd}\n${out.trimEnd()}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo builds network namespaces: run it as root');
  step(`building ${HOSTS} hosts (network namespaces on an underlay 198.18.0.0/16) and etcd`);
  const lab: Lab = await createLab({ hosts: HOSTS });
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    for (const h of lab.hosts) console.log(`host ${h.name}  underlay ${h.ip} on ${h.iface}`);
    console.log(`etcd at ${etcd} (in ${lab.underlay.name})`);

    step('writing the network config (flannel field names)');
    const h1 = lab.hosts[0]!;
    const cfg = '{"Network":"10.42.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}';
    const set = await weft(h1, ['config', 'set', cfg, '--etcd-endpoints', etcd]);
    show(`weft config set '${cfg}'`, set.stderr);

    step('starting one weft agent per host');
    const agents: WeftAgent[] = [];
    for (const h of lab.hosts) {
      agents.push(await startAgent(h, { dir: join(lab.tmpDir, h.name), etcd, args: ['--iface', h.iface, '--log-level', 'warn'] }));
    }
    for (const [i, a] of agents.entries()) {
      const st = await a.waitFor((s) => s.ready && s.leases.length === HOSTS, `all ${HOSTS} leases`);
      console.log(`host ${i + 1} (${st.publicIP}) leased ${st.subnet}; overlay MTU ${st.mtu}; sees ${st.leases.length} leases`);
    }

    step('weft leases');
    show('weft leases', (await weft(h1, ['leases', '--etcd-endpoints', etcd])).stdout);

    step('two containers per host, attached with `weft attach`');
    const containers: { c: LabContainer; ip: string; host: number }[] = [];
    for (const [i, h] of lab.hosts.entries()) {
      for (const label of ['web', 'db']) {
        const c = await h.addContainer(`${label}${i + 1}`);
        const r = await weft(h, ['attach', '--netns', c.netnsPath, '--name', `${label}${i + 1}`, '--run-dir', agents[i]!.runDir]);
        if (r.code !== 0) throw new Error(`weft attach failed: ${r.stderr}`);
        const ip = r.stdout.trim().split('/')[0]!;
        containers.push({ c, ip, host: i + 1 });
        console.log(`host ${i + 1}: container ${label}${i + 1} (${c.name}) got ${r.stdout.trim()}`);
      }
    }

    step('every container pings every other (across hosts through VXLAN)');
    let bad = 0;
    await Promise.all(
      containers.map(async (from) => {
        for (const to of containers) {
          if (to === from) continue;
          const p = await from.c.exec(['ping', '-c', '1', '-W', '2', to.ip], { allowFail: true });
          const ok = p.code === 0;
          if (!ok) bad++;
          const rtt = /time=([\d.]+ ms)/.exec(p.stdout)?.[1] ?? 'no reply';
          console.log(`${(from.c.label ?? '').padEnd(4)} (host ${from.host}) -> ${(to.c.label ?? '').padEnd(4)} ${to.ip.padEnd(12)} (host ${to.host}): ${ok ? 'ok' : 'FAILED'} ${rtt}`);
        }
      }),
    );
    if (bad > 0) throw new Error(`${bad} of ${containers.length * (containers.length - 1)} pings failed`);
    console.log(`all ${containers.length * (containers.length - 1)} pings answered`);

    step('containers find each other by name (gossip DNS; each host answers on its gateway address)');
    const web1 = containers.find((x) => x.c.label === 'web1')!;
    const db3 = containers.find((x) => x.c.label === 'db3')!;
    const gw1 = web1.ip.replace(/\.\d+$/, '.1');
    const found = await pollUntil(() => dig(web1.c, gw1, 'db3.weft.local'), (r) => r.answers.length > 0, 15_000, 100);
    show(`(web1 on host 1) dig +short @${gw1} db3.weft.local`, found.answers.join('\n'));
    show('(web1 on host 1) cat /etc/resolv.conf', (await web1.c.exec(['cat', '/etc/resolv.conf'])).stdout);
    const byName = await web1.c.exec(['ping', '-c', '1', '-W', '2', 'db3'], { allowFail: true });
    show('(web1 on host 1) ping -c 1 db3', byName.stdout);
    if (byName.code !== 0 || !byName.stdout.includes(db3.ip)) throw new Error(`web1 could not reach db3 (${db3.ip}) by name`);
    show('weft dns ls (host 1)', (await weft(h1, ['dns', 'ls', '--run-dir', agents[0]!.runDir])).stdout);

    step('routes, neighbours and FDB on host 1 (programmed by weft over netlink)');
    show('ip route', (await h1.exec(['ip', 'route'])).stdout);
    show('ip neigh show dev weft.1', (await h1.exec(['ip', 'neigh', 'show', 'dev', 'weft.1'])).stdout);
    show('bridge fdb show dev weft.1', (await h1.exec(['bridge', 'fdb', 'show', 'dev', 'weft.1'])).stdout);
    show('weft ps', (await weft(h1, ['ps', '--run-dir', agents[0]!.runDir])).stdout);

    step('weft status (host 1)');
    show(`weft status --run-dir ${agents[0]!.runDir}`, (await weft(h1, ['status', '--run-dir', agents[0]!.runDir])).stdout);
    show('cat subnet.env', (await h1.exec(['cat', join(agents[0]!.runDir, 'subnet.env')])).stdout);

    if (keep) {
      step('running; press Ctrl-C to stop and clean up');
      await new Promise(() => undefined);
    }
  } finally {
    step('cleaning up');
    await lab.destroy();
    console.log('removed every namespace, process and file the demo made');
  }
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exit(1);
});
