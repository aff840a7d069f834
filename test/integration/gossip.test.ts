// Gossip membership for real: weft agents in three lab hosts find each other
// through the leases in etcd, authenticated with the cluster key the first
// agent created (zero configuration). A fourth host with another key is
// refused (counted, never a member). 10 000 hostile datagrams and a few
// hostile TCP connections leave the agent answering and the membership
// right. A SIGKILLed agent is declared dead by the others, and is the same
// member again, with a higher incarnation, after it restarts.

import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../agent/api/client.js';
import type { PeersReply } from '../../agent/commands/peers.js';
import { generateKey } from '../../ipam/keys.js';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab } from '../lab/index.js';
import { REPO_ROOT, startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

interface GossipSection { running: boolean; members: number; alive: number; dead: number; dropped: { auth: number; unknownKey: number; malformed: number; oversize: number } }

const peers = (a: WeftAgent): Promise<PeersReply> => callAgent<PeersReply>(a.runDir, 'GET', '/v1/peers');
const gossipOf = async (a: WeftAgent): Promise<GossipSection> => (await a.status())['gossip'] as GossipSection;
const stateOf = (r: PeersReply, id: string): string | undefined => r.members.find((m) => m.id === id)?.state;

describe('gossip membership between agents', () => {
  let lab: Lab;
  const agents: WeftAgent[] = [];
  let ips: string[] = [];

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 4 });
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan"}}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    for (const [i, host] of lab.hosts.slice(0, 3).entries()) {
      agents.push(await startAgent(host, { dir: join(lab.tmpDir, `agent-h${i + 1}`), etcd: ETCD, args: ['--iface', 'eth0'] }));
    }
    ips = lab.hosts.slice(0, 3).map((h) => h.ip);
    await Promise.all(agents.map((a) => a.ready()));
  });
  afterAll(async () => lab?.destroy());

  it('the three agents find each other through the leases and all are alive', async () => {
    for (const a of agents) {
      const r = await pollUntil(() => peers(a), (r) => ips.every((ip) => stateOf(r, ip) === 'alive'), 20_000);
      expect(r.members.map((m) => m.id).sort()).toEqual([...ips].sort());
      expect(r.members.every((m) => m.port === 7946)).toBe(true);
    }
    const leases = await weft(lab.hosts[0]!, ['leases', '--json', '--etcd-endpoints', ETCD]);
    expect(leases.stdout).toContain('"GossipPort": 7946');
    const table = await weft(lab.hosts[0]!, ['peers', '--run-dir', agents[0]!.runDir]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`${ips[0]} (this host)`);
    const status = await weft(lab.hosts[0]!, ['status', '--run-dir', agents[0]!.runDir]);
    expect(status.stdout).toMatch(/gossip\s+port 7946, 3 members: 3 alive, 0 suspect, 0 dead/);
  });

  it('a peer with another key is refused: counted as unauthenticated, never a member', async () => {
    const keyFile = join(lab.tmpDir, 'other.key');
    await writeFile(keyFile, `${generateKey()}\n`);
    const before = await gossipOf(agents[0]!);
    const stranger = await startAgent(lab.hosts[3]!, { dir: join(lab.tmpDir, 'agent-h4'), etcd: ETCD, args: ['--iface', 'eth0', '--key-file', keyFile] });
    await stranger.ready();
    // The stranger joins from the leases (it sees ours) and we push-pull to it (we see its lease).
    const after = await pollUntil(() => gossipOf(agents[0]!), (g) => g.dropped.unknownKey > before.dropped.unknownKey, 20_000);
    expect(after.dropped.unknownKey).toBeGreaterThan(before.dropped.unknownKey);
    await new Promise((r) => setTimeout(r, 2000));
    for (const a of agents) expect(stateOf(await peers(a), lab.hosts[3]!.ip)).toBeUndefined();
    const its = await peers(stranger);
    expect(its.members.map((m) => m.id)).toEqual([lab.hosts[3]!.ip]);
    stranger.proc.kill('SIGTERM');
    await stranger.proc.exited;
  });

  it('10 000 hostile datagrams and hostile TCP connections: the agent answers and the membership stays right', async () => {
    const key = (await lab.etcd.etcdctl(['get', '/weft/network/cluster-key', '--print-value-only'])).stdout.trim();
    const before = await gossipOf(agents[0]!);
    const fuzz = await lab.hosts[3]!.exec([process.execPath, join(REPO_ROOT, 'dist/test/lab/gossip-fuzz.js'), '--to', ips[0]!, '--port', '7946', '--key', key, '--count', '10000'], { timeoutMs: 90_000 });
    const sent = JSON.parse(fuzz.stdout.trim()) as { random: number; tampered: number; sealedGarbage: number; tcp: number };
    expect(sent.random + sent.tampered + sent.sealedGarbage).toBe(10_000);
    const after = await pollUntil(() => gossipOf(agents[0]!), (g) => g.dropped.malformed - before.dropped.malformed >= sent.sealedGarbage, 10_000);
    // Random bytes are malformed or name an unknown key; tampered ones fail authentication; sealed garbage fails decoding.
    expect(after.dropped.auth - before.dropped.auth).toBeGreaterThan(0);
    expect(after.dropped.malformed - before.dropped.malformed).toBeGreaterThanOrEqual(sent.sealedGarbage);
    expect(after.dropped.oversize - before.dropped.oversize).toBeGreaterThan(0);
    expect(agents[0]!.proc.running).toBe(true);
    for (const a of agents) {
      const r = await pollUntil(() => peers(a), (r) => ips.every((ip) => stateOf(r, ip) === 'alive'), 10_000);
      expect(r.members.map((m) => m.id).sort()).toEqual([...ips].sort());
      expect(r.members.filter((m) => m.id === lab.hosts[3]!.ip || m.id === '198.18.0.250')).toEqual([]);
    }
  });

  it('a SIGKILLed agent is declared dead by the others, then alive again (same member, higher incarnation) after a restart', async () => {
    const victim = agents[2]!;
    const id = ips[2]!;
    const incBefore = (await peers(agents[0]!)).members.find((m) => m.id === id)!.incarnation;
    victim.proc.kill('SIGKILL');
    await victim.proc.exited;
    for (const a of agents.slice(0, 2)) {
      const r = await pollUntil(() => peers(a), (r) => stateOf(r, id) === 'dead', 30_000, 200);
      expect(stateOf(r, id)).toBe('dead');
    }
    await victim.start();
    await victim.ready();
    for (const a of agents.slice(0, 2)) {
      const r = await pollUntil(() => peers(a), (r) => stateOf(r, id) === 'alive', 20_000, 200);
      const entries = r.members.filter((m) => m.id === id);
      expect(entries).toHaveLength(1);
      expect(entries[0]!.state).toBe('alive');
      expect(entries[0]!.incarnation).toBeGreaterThan(incBefore);
    }
    const back = await pollUntil(() => peers(victim), (r) => ips.every((ip) => stateOf(r, ip) === 'alive'), 20_000);
    expect(back.members.map((m) => m.id).sort()).toEqual([...ips].sort());
  });
});
