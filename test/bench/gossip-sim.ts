// An in-process gossip cluster on a simulated network: thousands of SwimNodes
// (the agent's own state machine), virtual time on one event heap, and a
// lossy network that hands message objects over (no sockets, no sealing), so
// a 5000-member cluster runs for simulated minutes in seconds. Deterministic:
// one seeded PRNG drives loss, latency and every node's random choices.
// Used by the simulation unit test and by gossip.bench.ts.

import type { Endpoint, Packet, PushPullState } from '../../agent/gossip/messages.js';
import { memberlistDefaults, SwimNode, type SwimConfig, type SwimTransport, type Timers } from '../../agent/gossip/swim.js';
import type { GossipDelegate, MemberInfo } from '../../agent/gossip/types.js';
import { seededRandom } from '../lab/seeded-random.js';


interface Ev { at: number; n: number; fn: () => void; cancelled: boolean }

/** Virtual time: a binary heap of pending callbacks, run in (time, insertion) order. */
export class VirtualTime implements Timers {
  private heap: Ev[] = [];
  private n = 0;
  private t = 0;
  now(): number { return this.t; }
  after(ms: number, fn: () => void): () => void {
    const ev: Ev = { at: this.t + Math.max(0, ms), n: this.n++, fn, cancelled: false };
    this.push(ev);
    return () => { ev.cancelled = true; };
  }
  /** Runs every event due up to `until`; returns false when nothing is left. */
  runUntil(until: number): void {
    while (this.heap.length > 0 && this.heap[0]!.at <= until) {
      const ev = this.pop();
      this.t = ev.at;
      if (!ev.cancelled) ev.fn();
    }
    this.t = until;
  }
  private less(a: Ev, b: Ev): boolean { return a.at < b.at || (a.at === b.at && a.n < b.n); }
  private push(ev: Ev): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  private pop(): Ev {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

export interface SimOptions {
  n: number;
  /** Probability that one datagram is lost. */
  loss: number;
  seed: number;
  config?: Partial<SwimConfig>;
  /** One-way latency range in ms. */
  latencyMs?: readonly [number, number];
  /**
   * Members each one knows at the start (plus the broadcaster and the victim, members 0 and n−1);
   * default everyone. A full view costs n² member records, too much memory for 5000 members in a unit test.
   */
  view?: number;
}

/** What each simulated member's delegate saw: first time it learnt each user message, member states. */
class SimDelegate implements GossipDelegate {
  readonly firstSeen = new Map<string, number>();
  readonly states = new Map<string, MemberInfo['state']>();
  constructor(private readonly time: VirtualTime) {}
  localState(): Uint8Array { return new Uint8Array(0); }
  mergeRemoteState(): void {}
  notifyMessage(msg: Uint8Array): void {
    const k = Buffer.from(msg).toString();
    if (!this.firstSeen.has(k)) this.firstSeen.set(k, this.time.now());
  }
  notifyMember(m: MemberInfo): void { this.states.set(m.id, m.state); }
}

export class SimCluster {
  readonly time = new VirtualTime();
  readonly nodes: SwimNode[] = [];
  readonly delegates: SimDelegate[] = [];
  readonly up: boolean[] = [];
  private readonly byAddr = new Map<string, number>();
  private readonly random: () => number;
  packets = 0;
  lost = 0;

  constructor(readonly opts: SimOptions) {
    this.random = seededRandom(opts.seed);
    const config: SwimConfig = { ...memberlistDefaults, pushPullIntervalMs: 0, ...opts.config };
    const [lo, hi] = opts.latencyMs ?? [0.5, 3];
    for (let i = 0; i < opts.n; i++) {
      const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      this.byAddr.set(addr, i);
      const transport: SwimTransport = {
        sendPacket: (to: Endpoint, p: Packet) => {
          this.packets++;
          if (this.random() < opts.loss) { this.lost++; return; }
          const j = this.byAddr.get(to.addr);
          if (j === undefined) return;
          this.time.after(lo + this.random() * (hi - lo), () => { if (this.up[j]) this.nodes[j]!.handlePacket(p); });
        },
        pushPull: async (to: Endpoint, local: PushPullState) => {
          const j = this.byAddr.get(to.addr);
          if (j === undefined || !this.up[j] || this.random() < opts.loss) throw new Error('unreachable');
          return this.nodes[j]!.handlePushPull(local);
        },
      };
      const d = new SimDelegate(this.time);
      this.delegates.push(d);
      this.nodes.push(new SwimNode({ id: addr, addr, port: 7946, config, transport, timers: this.time, random: this.random, delegate: d, announce: opts.view === undefined }));
      this.up.push(true);
    }
    // A formed cluster: everybody knows everybody (as after joining), so the figures measure gossip itself.
    const all = this.nodes;
    if (opts.view === undefined) {
      for (const a of all) for (const b of all) a.addKnown(b.id, b.addr, b.port);
    } else {
      for (const a of all) {
        for (const b of [all[0]!, all[all.length - 1]!]) a.addKnown(b.id, b.addr, b.port);
        for (let k = 0; k < opts.view; k++) {
          const b = all[Math.floor(this.random() * all.length)]!;
          a.addKnown(b.id, b.addr, b.port);
        }
      }
    }
    for (const a of this.nodes) a.start();
  }

  /** Advance virtual time in steps, yielding to microtasks (push-pull), until `done` or `maxMs` more. Returns the time. */
  async runUntil(done: () => boolean, maxMs: number, stepMs = 10): Promise<number> {
    const end = this.time.now() + maxMs;
    while (this.time.now() < end) {
      this.time.runUntil(this.time.now() + stepMs);
      await new Promise<void>((r) => setImmediate(r));
      if (done()) return this.time.now();
    }
    return this.time.now();
  }

  kill(i: number): void {
    this.up[i] = false;
    this.nodes[i]!.stop();
  }

  /** How many live members have learnt user message `key`. */
  knowing(key: string): number {
    const origin = key.split('|')[0];
    let c = 0;
    for (let i = 0; i < this.nodes.length; i++) if (this.up[i] && (this.delegates[i]!.firstSeen.has(key) || this.nodes[i]!.id === origin)) c++;
    return c;
  }

  /** How many live members (other than `i`) hold member `i` as dead. */
  agreeingDead(i: number): number {
    const id = this.nodes[i]!.id;
    let c = 0;
    for (let j = 0; j < this.nodes.length; j++) if (j !== i && this.up[j] && this.delegates[j]!.states.get(id) === 'dead') c++;
    return c;
  }

  liveCount(): number { return this.up.filter(Boolean).length; }

  /** Members that some live member holds as dead although they are up (false positives). */
  falselyDead(): number {
    let c = 0;
    for (let j = 0; j < this.nodes.length; j++) {
      if (!this.up[j]) continue;
      for (const [id, s] of this.delegates[j]!.states) if (s === 'dead' && this.up[this.byAddr.get(id)!]) c++;
    }
    return c;
  }
}

export interface SimFigures {
  n: number;
  /** ms of virtual time from the broadcast until 99.99 % of live members know it, and until all do. */
  disseminate9999Ms: number;
  disseminateAllMs: number;
  /** ms from the kill until every live member holds the killed member dead (NaN: not measured). */
  deathAgreedMs: number;
  falselyDead: number;
  lossRate: number;
  /** Members each knew at the start (n − 1 for a full view). */
  view: number;
  /** Datagrams sent in the whole run, per member per second of virtual time. */
  packetsPerMemberSecond: number;
}

export interface SimRun { loss?: number; view?: number; config?: Partial<SwimConfig>; /** Also kill a member and wait for agreement (the slow part). */ death?: boolean }

/** One run: warm up, broadcast a record from member 0, then (optionally) kill member n−1 and wait for agreement. */
export async function simulate(n: number, seed: number, opts: SimRun = {}): Promise<SimFigures> {
  const c = new SimCluster({ n, loss: opts.loss ?? 0.05, seed, ...(opts.config ? { config: opts.config } : {}), ...(opts.view !== undefined ? { view: opts.view } : {}) });
  // Every member's first probe and gossip tick falls within one interval (staggered starts).
  await c.runUntil(() => false, 1100, 50);
  const key = `${c.nodes[0]!.id}|record-1`;
  const t0 = c.time.now();
  c.nodes[0]!.broadcast(Buffer.from(key));
  const want = Math.ceil(0.9999 * n);
  const t9999 = await c.runUntil(() => c.knowing(key) >= want, 60_000, 5);
  const tAll = await c.runUntil(() => c.knowing(key) >= n, 60_000, 5);
  let deathAgreedMs = NaN;
  if (opts.death !== false) {
    const victim = n - 1;
    c.kill(victim);
    const tk = c.time.now();
    const tDead = await c.runUntil(() => c.agreeingDead(victim) >= c.liveCount(), 120_000, 50);
    deathAgreedMs = c.agreeingDead(victim) >= c.liveCount() ? tDead - tk : Infinity;
  }
  return {
    n,
    disseminate9999Ms: t9999 - t0,
    disseminateAllMs: tAll - t0,
    deathAgreedMs,
    falselyDead: c.falselyDead(),
    lossRate: c.lost / Math.max(1, c.packets),
    view: opts.view ?? n - 1,
    packetsPerMemberSecond: c.packets / n / (c.time.now() / 1000),
  };
}
