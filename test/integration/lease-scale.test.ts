// 5000 leases and a compaction: one real agent watches 5000 real leases
// (made by lease-sim's simulated hosts); etcd restarts while the agent is
// frozen, keys change and etcd is compacted past the agent's last revision,
// so the resumed watch is refused as compacted. The agent must re-list once
// (not once per event, not in a loop) and converge on the new set. (Before
// this test, the relist waited forever for etcd3 to cancel the watch etcd had
// already ended, and the agent never saw another change.)

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRoot, createLab, UNDERLAY_GATEWAY, type Lab, type LabProcess } from '../lab/index.js';
import { REPO_ROOT, startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
const COUNT = 5000;

const relists = (agent: WeftAgent): string[] => agent.proc.stderr.split('\n').filter((l) => l.includes('"msg":"subnet leases listed"'));

describe(`compaction at ${COUNT} leases`, () => {
  let lab: Lab;
  let agent: WeftAgent;
  let sim: LabProcess;
  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 2 });
    const [h1, h2] = [lab.hosts[0]!, lab.hosts[1]!];
    const set = await weft(h1, ['config', 'set', '{"Network":"10.0.0.0/8","SubnetLen":24}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    sim = h2.spawn([process.execPath, join(REPO_ROOT, 'dist/test/bench/lease-sim.js'), '--etcd', ETCD, '--count', String(COUNT), '--prefix', '/weft/network', '--hold', '--no-baseline'], { stdin: true });
    const out = await sim.waitForOutput(/\{"count".*\}/, 120_000);
    expect((JSON.parse(out[0]) as { distinct: number }).distinct).toBe(COUNT);
    agent = await startAgent(h1, { dir: join(lab.tmpDir, 'watcher'), etcd: ETCD, args: ['--iface', 'eth0', '--watch-check-interval', '30'] });
    await agent.waitFor((s) => s.ready && s.leases.length === COUNT + 1, `ready with ${COUNT + 1} leases`, 90_000);
  }, 240_000);
  afterAll(async () => {
    sim?.child.stdin?.end();
    await lab?.destroy();
  });

  it('the watch refused as compacted costs one relist, and the agent converges on the changed set', async () => {
    const before = relists(agent).length;
    const current = await agent.status();
    const own = `/weft/network/subnets/${current.subnet!.replace('/', '-')}`;
    // A subnet no simulated host chose (5000 random /24s of 10.0.0.0/8 take a given one 7.6 % of the time,
    // and a put over an existing lease would not add one).
    const held = new Set(current.leases.map((l) => l.subnet));
    const added = Array.from({ length: 256 }, (_, i) => `10.250.${i}.0/24`).find((s) => !held.has(s))!;
    const some = (await lab.etcd.etcdctl(['get', '--prefix', '--keys-only', '--limit', '10', '/weft/network/subnets/'])).stdout.split('\n').filter(Boolean);
    const gone = some.filter((k) => k !== own).slice(0, 5);
    agent.proc.kill('SIGSTOP');
    try {
      await lab.etcd.restart();
      // Changes the frozen agent has not seen, then a compaction past them.
      for (const k of gone) expect((await lab.etcd.etcdctl(['del', k])).stdout.trim()).toBe('1');
      await lab.etcd.etcdctl(['put', `/weft/network/subnets/${added.replace('/', '-')}`, '{"PublicIP":"198.19.250.1","BackendType":"vxlan","BackendData":{"VtepMAC":"02:00:00:00:fa:01"}}']);
      const status = JSON.parse((await lab.etcd.etcdctl(['endpoint', 'status', '-w', 'json'])).stdout) as { Status: { header: { revision: number } } }[];
      await lab.etcd.etcdctl(['compact', String(status[0]!.Status.header.revision)]);
    } finally {
      agent.proc.kill('SIGCONT');
    }
    const expected = COUNT + 1 - gone.length + 1;
    const after = await agent.waitFor((s) => s.leases.length === expected && s.leases.some((l) => l.subnet === added), 'the changed set', 60_000);
    expect(after.leases.map((l) => l.subnet)).not.toContain(gone[0]!.split('/').pop()!.replace('-', '/'));
    // Give a storm the chance to show itself, then count.
    await new Promise((r) => setTimeout(r, 3000));
    const lists = relists(agent).slice(before);
    expect(lists, lists.join('\n')).toHaveLength(1);
    expect(lists[0]).toMatch(/"reason":"watch broken"/);
    expect(agent.proc.stderr).toMatch(/subnet watch broke; re-listing/);
  }, 120_000);
});
