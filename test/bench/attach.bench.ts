// Attach latency, like for like. Three ways of joining a fresh container
// namespace to a network, each a process spawned the same way by one driver
// inside the lab host (test/integration/support/cni.ts: spawn until stdout
// closes), calls interleaved so all three see the same machine:
//   - `weft attach --netns … --container-id …` (then `weft detach`), the CLI as
//     an operator runs it, against a real `weft agent` in that host;
//   - the agent's API over its unix socket from a separate process: `curl
//     --unix-socket … POST /v1/attach` (a small C client, as the CNI relay is);
//   - the reference CNI `bridge` + `host-local` plugins, ADD (then DEL).
// Also `node -e 0` spawned the same way: the floor under any Node CLI.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, UNDERLAY_GATEWAY, type LabHost } from '../lab/index.js';
import { startAgent, weft, WEFT_CLI } from '../lab/weft.js';
import { cniEnv, REFERENCE_BIN_DIR, startTimedRunner, type CniOutcome } from '../integration/support/cni.js';
import { percentile, type BenchResult } from './types.js';

const COUNT = 40;
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

interface Stats {
  p50: number;
  p99: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

const fmt = (s: Stats): string => `p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms`;

function ok(what: string, r: CniOutcome): number {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.ms;
}

async function containers(host: LabHost, n: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < n; i += 20) paths.push(...(await Promise.all(Array.from({ length: Math.min(20, n - i) }, async () => (await host.addContainer()).netnsPath))));
  return paths;
}

export default async function attachBench(): Promise<BenchResult> {
  const lab = await createLab({ hosts: 1 });
  const host = lab.hosts[0]!;
  const runner = await startTimedRunner(host);
  try {
    const etcd = `http://${UNDERLAY_GATEWAY}:2379`;
    const set = await weft(host, ['config', 'set', '{"Network":"10.42.0.0/16"}', '--etcd-endpoints', etcd]);
    if (set.code !== 0) throw new Error(set.stderr);
    const agent = await startAgent(host, { dir: join(lab.tmpDir, 'agent'), etcd, args: ['--iface', 'eth0', '--log-level', 'warn'] });
    await agent.ready();
    const sock = join(agent.runDir, 'weft.sock');
    const [cliNs, apiNs, refNs] = [await containers(host, COUNT), await containers(host, COUNT), await containers(host, COUNT)];
    const dataDir = join(lab.tmpDir, 'cni-ipam');
    await mkdir(dataDir, { recursive: true });
    const refConfig = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'bridge', bridge: 'cni0', isGateway: true, mtu: 1450, ipam: { type: 'host-local', subnet: '10.43.0.0/24', dataDir } });

    const cli = (args: string[]) => runner.run(process.execPath, ENV, '', 30_000, [WEFT_CLI, ...args, '--run-dir', agent.runDir]);
    const api = (path: string, body: unknown) =>
      runner.run('/usr/bin/curl', ENV, '', 30_000, ['-sSf', '--unix-socket', sock, '-X', 'POST', '-H', 'content-type: application/json', '-d', JSON.stringify(body), `http://weft${path}`]);
    const ref = (command: 'ADD' | 'DEL', i: number) =>
      runner.run(`${REFERENCE_BIN_DIR}/bridge`, cniEnv({ command, containerId: `r${i}`, netns: refNs[i]!, ifname: 'eth0', config: '' }, REFERENCE_BIN_DIR), refConfig, 30_000);

    const t = { cliAdd: [] as number[], apiAdd: [] as number[], refAdd: [] as number[], cliDel: [] as number[], apiDel: [] as number[], refDel: [] as number[], node: [] as number[] };
    const ips = new Set<string>();
    for (let i = 0; i < COUNT; i++) {
      t.refAdd.push(ok('reference ADD', await ref('ADD', i)));
      const c = await cli(['attach', '--netns', cliNs[i]!, '--container-id', `c${i}`]);
      t.cliAdd.push(ok('weft attach', c));
      ips.add(c.stdout.trim());
      const a = await api('/v1/attach', { containerId: `a${i}`, netns: apiNs[i]! });
      t.apiAdd.push(ok('API attach', a));
      ips.add((JSON.parse(a.stdout) as { ip: string }).ip);
      t.node.push(ok('node -e 0', await runner.run(process.execPath, ENV, '', 30_000, ['-e', '0'])));
    }
    if (ips.size !== 2 * COUNT) throw new Error(`only ${ips.size} distinct addresses for ${2 * COUNT} attaches`);
    for (let i = 0; i < COUNT; i++) {
      t.refDel.push(ok('reference DEL', await ref('DEL', i)));
      t.cliDel.push(ok('weft detach', await cli(['detach', '--container-id', `c${i}`])));
      t.apiDel.push(ok('API detach', await api('/v1/detach', { containerId: `a${i}` })));
    }
    const s = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, stats(v)])) as Record<keyof typeof t, Stats>;
    return {
      name: 'attach',
      lines: [
        `${COUNT} sequential attaches then detaches per way, each a process spawned by one driver in the host, interleaved:`,
        `  weft attach (CLI): ${fmt(s.cliAdd)}; weft detach: ${fmt(s.cliDel)}  (node -e 0 spawned the same way: ${fmt(s.node)})`,
        `  API over the socket from curl: attach ${fmt(s.apiAdd)}; detach ${fmt(s.apiDel)}`,
        `  reference bridge + host-local: ADD ${fmt(s.refAdd)}; DEL ${fmt(s.refDel)}`,
        `  ratio p50 to the reference: CLI attach ${(s.cliAdd.p50 / s.refAdd.p50).toFixed(2)}, detach ${(s.cliDel.p50 / s.refDel.p50).toFixed(2)}; API attach ${(s.apiAdd.p50 / s.refAdd.p50).toFixed(2)}, detach ${(s.apiDel.p50 / s.refDel.p50).toFixed(2)}`,
      ],
      figures: {
        cliAttachP50: s.cliAdd.p50,
        cliDetachP50: s.cliDel.p50,
        apiAttachP50: s.apiAdd.p50,
        apiAttachP99: s.apiAdd.p99,
        apiDetachP50: s.apiDel.p50,
        refAddP50: s.refAdd.p50,
        refAddP99: s.refAdd.p99,
        refDelP50: s.refDel.p50,
        nodeP50: s.node.p50,
        cliAttachRatio: s.cliAdd.p50 / s.refAdd.p50,
        apiAttachRatio: s.apiAdd.p50 / s.refAdd.p50,
        apiDetachRatio: s.apiDel.p50 / s.refDel.p50,
      },
    };
  } finally {
    await runner.close();
    await lab.destroy();
  }
}

if (process.argv[1]?.endsWith('attach.bench.js')) {
  const r = await attachBench();
  for (const line of r.lines) console.log(line);
}
