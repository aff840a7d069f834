// Nothing leaks when the agent dies mid-attach: a real agent in a lab host is
// SIGKILLed while 20 attaches run in parallel, three times. After each
// restart (whose first sweep runs before the API answers) every reservation
// has a record, every weft veth has a record, `weft ps` lists every container
// interface that works, and no address is held twice; the runtime's retries
// then converge. Also the periodic sweep: a namespace deleted without a
// detach is freed on the next resync.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../agent/api/client.js';
import type { Attachment, AttachmentList } from '../../agent/api/types.js';
import { poolFile, type PoolState } from '../../ipam/address-pool.js';
import { isHostIfName } from '../../encap/plumb.js';
import type { AttachmentSweeper } from '../../agent/attachments/sweep.js';
import { assertRoot, createLab, pollUntil, run, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabHost } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
type SweepStatus = ReturnType<AttachmentSweeper['status']>;
const PARALLEL = 20;

async function reservations(agent: WeftAgent): Promise<PoolState['reservations']> {
  const text = await readFile(poolFile(agent.stateDir), 'utf8').catch(() => undefined);
  return text === undefined ? [] : (JSON.parse(text) as PoolState).reservations;
}

/** weft's veths in the host namespace, and which of them hang on weft0. */
async function weftVeths(host: LabHost): Promise<{ all: string[]; bridged: string[] }> {
  const links = JSON.parse((await host.exec(['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout || '[]') as { ifname: string; master?: string }[];
  const all = links.map((l) => l.ifname).filter(isHostIfName);
  const bridged = JSON.parse((await host.exec(['ip', '-j', 'link', 'show', 'master', 'weft0'])).stdout || '[]') as { ifname: string }[];
  return { all, bridged: bridged.map((l) => l.ifname) };
}

/** The container's eth0 address when it has a working one (up, addressed, its veth peer alive), else undefined. */
async function eth0(c: LabContainer): Promise<string | undefined> {
  const r = await run(['ip', '-n', c.name, '-j', '-4', 'addr', 'show', 'dev', 'eth0'], { allowFail: true });
  if (r.code !== 0) return undefined;
  const [link] = JSON.parse(r.stdout || '[]') as { flags: string[]; addr_info: { local: string; prefixlen: number }[] }[];
  const a = link?.addr_info[0];
  return a && link.flags.includes('UP') ? `${a.local}/${a.prefixlen}` : undefined;
}

const ps = async (agent: WeftAgent): Promise<AttachmentList> => {
  const r = await weft(agent.host, ['ps', '--json', '--run-dir', agent.runDir]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AttachmentList;
};

describe('the attachment sweep in a real agent', () => {
  let lab: Lab;
  let host: LabHost;
  let agent: WeftAgent;
  const dir = (): string => join(lab.tmpDir, 'agent');
  const start = async (): Promise<WeftAgent> => {
    const a = await startAgent(host, { dir: dir(), etcd: ETCD, args: ['--iface', 'eth0', '--resync-interval', '2'] });
    await a.ready();
    return a;
  };

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 1 });
    host = lab.hosts[0]!;
    const set = await weft(host, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    agent = await start();
  });
  afterAll(async () => {
    await agent?.proc.stop();
    await lab?.destroy();
  });

  it('SIGKILL during 20 parallel attaches, three times: after the restart sweep nothing is left without a record, nothing is held twice', async () => {
    const all: LabContainer[] = [];
    let leftoversSeen = 0;
    let cutShort = 0;
    for (const [round, killAfter] of [1, 4, 8].entries()) {
      const cs = await Promise.all(Array.from({ length: PARALLEL }, () => host.addContainer(`k${round}`)));
      all.push(...cs);
      const id = (i: number): string => `kill-${round}-${i}`;
      const calls = cs.map((c, i) => callAgent<Attachment>(agent.runDir, 'POST', '/v1/attach', { containerId: id(i), netns: c.netnsPath }, 30_000).then(() => true, () => false));
      // Kill once this round's `killAfter`-th address is on disk: the burst is half-way.
      const mine = (rs: PoolState['reservations']): number => rs.filter((r) => r.containerId.startsWith(`kill-${round}-`)).length;
      await pollUntil(() => reservations(agent), (rs) => mine(rs) >= killAfter, 20_000, 5);
      agent.proc.kill('SIGKILL');
      await agent.proc.exited;
      cutShort += PARALLEL - (await Promise.all(calls)).filter(Boolean).length;

      // What the dead agent left behind (the sweep's work), for the record of this test.
      const before = await reservations(agent);
      const vethsBefore = (await weftVeths(host)).all;
      const recordsFile = JSON.parse(await readFile(join(agent.stateDir, 'attachments', 'attachments.json'), 'utf8').catch(() => '{"attachments":[]}')) as { attachments: Attachment[] };
      const recorded = new Set(recordsFile.attachments.map((a) => a.containerId));
      leftoversSeen += before.filter((r) => !recorded.has(r.containerId)).length + vethsBefore.length - recordsFile.attachments.length;

      agent = await start();
      // The first sweep ran before the API answered, and `weft status` says what it freed.
      const sweep = (await agent.status()).sweep as SweepStatus;
      expect(sweep.sweeps).toBeGreaterThanOrEqual(1);
      expect(sweep.last!.failed).toBe(0);
      const list = await ps(agent);
      const byId = new Map(list.attachments.map((a) => [a.containerId, a]));
      const rs = await reservations(agent);
      // Every reservation has a record; every weft veth (on weft0 or not) has a record.
      expect(rs.filter((r) => !byId.has(r.containerId)).map((r) => r.containerId)).toEqual([]);
      const veths = await weftVeths(host);
      const owned = new Set(list.attachments.map((a) => a.hostIfName));
      expect(veths.all.filter((v) => !owned.has(v))).toEqual([]);
      expect(veths.bridged.filter((v) => !owned.has(v))).toEqual([]);
      // Every working interface is listed, with its address; nothing listed is stale.
      for (const [i, c] of all.entries()) {
        const addr = await eth0(c);
        if (addr === undefined) continue;
        const a = list.attachments.find((x) => x.netns === c.netnsPath);
        expect(a, `${c.name} (${i}) has ${addr} on eth0 but weft ps does not list it`).toBeDefined();
        expect(a!.ip).toBe(addr);
      }
      expect(list.attachments.filter((a) => a.stale)).toEqual([]);
      expect(new Set(list.attachments.map((a) => a.ip)).size).toBe(list.attachments.length);

      // The runtime retries its ADDs: all converge, each container with its own address.
      const retried = await Promise.all(cs.map((c, i) => callAgent<Attachment>(agent.runDir, 'POST', '/v1/attach', { containerId: id(i), netns: c.netnsPath }, 30_000)));
      for (const [i, a] of retried.entries()) expect(await eth0(cs[i]!)).toBe(a.ip);
    }
    // The kills really landed mid-burst (not a test of a quiet agent).
    expect(cutShort, 'every attach finished before its kill').toBeGreaterThan(0);
    expect(leftoversSeen, 'no kill ever cut an attach short between reserve and record').toBeGreaterThan(0);
    const final = await ps(agent);
    expect(final.attachments).toHaveLength(all.length);
    expect(new Set(final.attachments.map((a) => a.ip)).size).toBe(all.length);
    expect((await weftVeths(host)).bridged.sort()).toEqual(final.attachments.map((a) => a.hostIfName).sort());
  }, 180_000);

  it('a namespace deleted without a detach is freed by the periodic sweep: address, veth, record', async () => {
    const c = await host.addContainer('vanish');
    const a = await callAgent<Attachment>(agent.runDir, 'POST', '/v1/attach', { containerId: 'vanish', netns: c.netnsPath });
    expect((await ps(agent)).attachments.find((x) => x.containerId === 'vanish')).toMatchObject({ stale: false });
    await run(['ip', 'netns', 'del', c.name]);
    const list = await pollUntil(() => ps(agent), (l) => !l.attachments.some((x) => x.containerId === 'vanish'), 15_000, 200);
    expect(list.attachments.map((x) => x.containerId)).not.toContain('vanish');
    expect((await reservations(agent)).map((r) => r.ip)).not.toContain(a.ip.split('/')[0]);
    expect((await weftVeths(host)).all).not.toContain(a.hostIfName);
  });
});
