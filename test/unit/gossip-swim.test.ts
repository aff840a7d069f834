// The SWIM state machine driven by a fake clock (virtual time) and a fake
// transport (an in-memory network where a test cuts members off): suspicion
// refuted by a higher incarnation, suspicion ending in death, a restarted
// member recognised as the same member with a higher incarnation.
import { describe, expect, it } from 'vitest';
import type { Endpoint, Packet, PushPullState } from '../../agent/gossip/messages.js';
import { memberlistDefaults, SwimNode, type SwimConfig } from '../../agent/gossip/swim.js';
import type { GossipDelegate, MemberInfo } from '../../agent/gossip/types.js';
import { VirtualTime } from '../bench/gossip-sim.js';
import { seededRandom } from '../lab/seeded-random.js';

class Recorder implements GossipDelegate {
  readonly events: MemberInfo[] = [];
  readonly messages: string[] = [];
  localState(): Uint8Array { return new Uint8Array(0); }
  mergeRemoteState(): void {}
  notifyMessage(msg: Uint8Array, from: string): void { this.messages.push(`${from}:${Buffer.from(msg).toString()}`); }
  notifyMember(m: MemberInfo): void { this.events.push(m); }
  statesOf(id: string): string[] { return this.events.filter((e) => e.id === id).map((e) => e.state); }
}

/** An in-memory network with per-member cut-off switches and a fixed 1 ms latency. */
class Net {
  readonly time = new VirtualTime();
  readonly random = seededRandom(7);
  readonly nodes = new Map<string, SwimNode>();
  readonly rec = new Map<string, Recorder>();
  readonly cut = new Set<string>();
  readonly sent: { to: Endpoint; packet: Packet }[] = [];

  add(id: string, incarnation?: number, config: Partial<SwimConfig> = {}): SwimNode {
    const rec = new Recorder();
    const node = new SwimNode({
      id, addr: id, port: 7946, config: { ...memberlistDefaults, ...config }, timers: this.time, random: this.random, delegate: rec,
      ...(incarnation !== undefined ? { incarnation } : {}),
      transport: {
        sendPacket: (to, packet) => {
          this.sent.push({ to, packet });
          if (this.cut.has(id) || this.cut.has(to.addr)) return;
          this.time.after(1, () => { if (this.nodes.get(to.addr) === node || !this.cut.has(to.addr)) this.nodes.get(to.addr)?.handlePacket(packet); });
        },
        pushPull: async (to: Endpoint, local: PushPullState) => {
          const peer = this.nodes.get(to.addr);
          if (peer === undefined || this.cut.has(id) || this.cut.has(to.addr)) throw new Error('connection refused');
          return peer.handlePushPull(local);
        },
      },
    });
    this.nodes.set(id, node);
    this.rec.set(id, rec);
    return node;
  }

  async run(ms: number): Promise<void> {
    const end = this.time.now() + ms;
    while (this.time.now() < end) {
      this.time.runUntil(Math.min(end, this.time.now() + 10));
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  view(of: string, about: string): MemberInfo | undefined {
    return this.nodes.get(of)!.members().find((m) => m.id === about);
  }
}

async function threeMembers(): Promise<Net> {
  const net = new Net();
  const ids = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
  for (const id of ids) net.add(id, 100);
  for (const a of ids) for (const b of ids) net.nodes.get(a)!.addKnown(b, b, 7946);
  for (const id of ids) net.nodes.get(id)!.start();
  await net.run(3000);
  return net;
}

describe('SWIM state machine', () => {
  it('keeps a healthy cluster alive and spreads a broadcast to everyone once', async () => {
    const net = await threeMembers();
    net.nodes.get('10.0.0.1')!.broadcast(Buffer.from('web'));
    await net.run(3000);
    for (const id of ['10.0.0.2', '10.0.0.3']) expect(net.rec.get(id)!.messages).toEqual(['10.0.0.1:web']);
    expect(net.rec.get('10.0.0.1')!.messages).toEqual([]);
    for (const a of net.nodes.keys()) for (const m of net.nodes.get(a)!.members()) expect(m.state).toBe('alive');
  });

  it('suspect → refute: a member cut off for a moment refutes with a higher incarnation and is never dead', async () => {
    const net = await threeMembers();
    const b = '10.0.0.2';
    const before = net.nodes.get(b)!.incarnation;
    net.cut.add(b);
    await net.run(2500); // long enough to be suspected, far shorter than the suspicion timeout
    const suspectedBy = ['10.0.0.1', '10.0.0.3'].filter((x) => net.view(x, b)?.state === 'suspect');
    expect(suspectedBy.length).toBeGreaterThan(0);
    net.cut.delete(b);
    await net.run(3000);
    expect(net.nodes.get(b)!.stats().refutes).toBeGreaterThan(0);
    for (const x of ['10.0.0.1', '10.0.0.3']) {
      expect(net.view(x, b)).toMatchObject({ state: 'alive' });
      expect(net.view(x, b)!.incarnation).toBeGreaterThan(before);
      expect(net.rec.get(x)!.statesOf(b)).not.toContain('dead');
    }
  });

  it('suspect → dead: a silent member is suspected, then declared dead after the suspicion timeout, not before', async () => {
    const net = await threeMembers();
    const c = '10.0.0.3';
    net.nodes.get(c)!.stop();
    net.cut.add(c);
    const t0 = net.time.now();
    let firstDead = Infinity;
    for (let i = 0; i < 400 && firstDead === Infinity; i++) {
      await net.run(100);
      if (['10.0.0.1', '10.0.0.2'].some((x) => net.view(x, c)?.state === 'dead')) firstDead = net.time.now();
    }
    await net.run(3000);
    for (const x of ['10.0.0.1', '10.0.0.2']) {
      expect(net.rec.get(x)!.statesOf(c)).toEqual(['suspect', 'dead']);
      expect(net.view(x, c)!.state).toBe('dead');
    }
    // Three members: no confirmations are awaited, so the timeout is the minimum, 4 · 1 s.
    expect(firstDead - t0).toBeGreaterThanOrEqual(4000);
    // The others never suspect each other meanwhile.
    expect(net.view('10.0.0.1', '10.0.0.2')!.state).toBe('alive');
  });

  it('restart: the same member comes back alive with a higher incarnation, not as a second member', async () => {
    const net = await threeMembers();
    const c = '10.0.0.3';
    const oldInc = net.nodes.get(c)!.incarnation;
    net.nodes.get(c)!.stop();
    net.cut.add(c);
    await net.run(15_000);
    expect(net.view('10.0.0.1', c)!.state).toBe('dead');
    net.cut.delete(c);
    // Restarted with a stale incarnation (no clock help): it learns it was declared dead and refutes.
    const again = net.add(c, 0);
    again.start();
    expect(await again.join([{ addr: '10.0.0.1', port: 7946 }])).toBe(1);
    await net.run(3000);
    for (const x of ['10.0.0.1', '10.0.0.2']) {
      const v = net.nodes.get(x)!.members();
      expect(v.filter((m) => m.id === c)).toHaveLength(1);
      expect(net.view(x, c)).toMatchObject({ state: 'alive' });
      expect(net.view(x, c)!.incarnation).toBeGreaterThan(oldInc);
      expect(net.rec.get(x)!.statesOf(c).slice(-1)).toEqual(['alive']);
    }
    expect(again.incarnation).toBeGreaterThan(oldInc);
  });

  it('a healed partition: both sides held each other dead; reconnecting push-pulls make them alive again', async () => {
    const net = new Net();
    const ids = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'];
    for (const id of ids) net.add(id, 100, { pushPullIntervalMs: 5000 });
    for (const a of ids) for (const b of ids) net.nodes.get(a)!.addKnown(b, b, 7946);
    for (const id of ids) net.nodes.get(id)!.start();
    await net.run(3000);
    // Cut 10.0.0.4 off (the other three form one side).
    net.cut.add('10.0.0.4');
    await net.run(30_000);
    expect(net.view('10.0.0.1', '10.0.0.4')!.state).toBe('dead');
    expect(net.view('10.0.0.4', '10.0.0.1')!.state).toBe('dead');
    net.cut.delete('10.0.0.4');
    await net.run(15_000);
    for (const a of ids) for (const b of ids) expect(net.view(a, b)?.state, `${a} about ${b}`).toBe('alive');
  });

  it('a restart after the clock moved on outranks its previous life at once (incarnation from seconds)', async () => {
    const net = new Net();
    await net.run(5000);
    const n = net.add('10.0.0.9');
    expect(n.incarnation).toBe(5);
  });

  it('ignores a ping meant for another member (an address reused by a new host)', async () => {
    const net = await threeMembers();
    const a = net.nodes.get('10.0.0.1')!;
    const before = net.sent.length;
    a.handlePacket({ from: '10.0.0.2', msgs: [{ t: 'ping', seq: 1, target: '10.0.0.99', srcAddr: '10.0.0.2', srcPort: 7946 }] });
    expect(a.stats().misdirectedPings).toBe(1);
    expect(net.sent.slice(before).filter((s) => s.packet.msgs.some((m) => m.t === 'ack' && m.seq === 1))).toHaveLength(0);
  });
});
