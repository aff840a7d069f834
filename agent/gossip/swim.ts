// The SWIM membership protocol as a state machine, with memberlist's
// refinements (Lifeguard suspicion timeouts, piggybacked dissemination,
// push-pull anti-entropy). It owns no socket and no clock: packets go out
// through a SwimTransport and time comes from Timers, so the unit tests (fake
// clock, fake transport), the simulation (thousands of nodes, virtual time,
// lossy network) and the agent (UDP + TCP, sealed) all run this same code.
//
// Per probe interval a node pings one member (round-robin over a shuffled
// list); no ack within the probe timeout → it asks `indirectChecks` others to
// ping it; no ack by the end of the interval → the member is suspected. A
// suspicion becomes a death after a timeout unless the member refutes it by
// announcing a higher incarnation. News (alive/suspect/dead and user
// messages) piggybacks on probes and on gossip rounds to `gossipNodes` random
// members, each item sent λ·log(N) times; a periodic full-state push-pull
// with one member repairs whatever was lost.

import { packetOverhead, msgSize } from './codec.js';
import { BroadcastQueue } from './broadcasts.js';
import type { Endpoint, Msg, Packet, PushPullMember, PushPullState } from './messages.js';
import { confirmationsWanted, retransmitLimit, suspicionMinMs, suspicionTimeoutMs } from './suspicion.js';
import type { GossipDelegate, MemberId, MemberInfo, MemberState } from './types.js';

export interface SwimTransport {
  sendPacket(to: Endpoint, packet: Packet): void;
  /** Exchange full states with the member at `to` (TCP in the agent); rejects on failure or timeout. */
  pushPull(to: Endpoint, local: PushPullState): Promise<PushPullState>;
}

export interface Timers {
  now(): number;
  /** Runs `fn` after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export interface SwimConfig {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  gossipIntervalMs: number;
  gossipNodes: number;
  indirectChecks: number;
  retransmitMult: number;
  suspicionMult: number;
  suspicionMaxMult: number;
  /** 0 turns periodic push-pull off (the simulation measures gossip alone). */
  pushPullIntervalMs: number;
  /** Largest datagram payload before sealing; stays under the underlay MTU. */
  maxPacketBytes: number;
  /** Dead members are forgotten after this long (they stay listed as dead until then). */
  deadReapMs: number;
  /** How long a user message's id is remembered so that it is re-gossiped only once. */
  seenTtlMs: number;
}

/** memberlist's DefaultLANConfig timings. */
export const memberlistDefaults: SwimConfig = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxMult: 6,
  pushPullIntervalMs: 30_000,
  maxPacketBytes: 1400,
  deadReapMs: 3_600_000,
  seenTtlMs: 300_000,
};

export interface SwimStats {
  members: number;
  alive: number;
  suspect: number;
  dead: number;
  incarnation: number;
  probes: number;
  probeFailures: number;
  suspicions: number;
  refutes: number;
  pushPulls: number;
  pushPullFailures: number;
  misdirectedPings: number;
  queuedBroadcasts: number;
}

export interface SwimOptions {
  id: MemberId;
  addr: string;
  port: number;
  config: SwimConfig;
  transport: SwimTransport;
  timers: Timers;
  random: () => number;
  delegate?: GossipDelegate;
  /** Where to join from when alone (the agent: gossip addresses from the etcd leases). */
  seeds?: () => Endpoint[];
  /** Start incarnation; default whole seconds of `timers.now()`, so a restart outranks its previous life. */
  incarnation?: number;
  onError?: (what: string, err: unknown) => void;
  /** Announce ourselves at start (default); the simulation's partial-view clusters do not, so views stay partial. */
  announce?: boolean;
}

interface Member { id: MemberId; addr: string; port: number; state: MemberState; inc: number; stateChange: number; lastContact?: number }

interface Suspicion { inc: number; from: Set<MemberId>; confirmations: number; wanted: number; start: number; minMs: number; maxMs: number; cancel: () => void }

const EMPTY = new Uint8Array(0);

export class SwimNode {
  readonly id: MemberId;
  readonly addr: string;
  readonly port: number;
  private inc: number;
  private readonly cfg: SwimConfig;
  private readonly byId = new Map<MemberId, Member>();
  /** The same members as an array, for O(1) random picks among thousands. */
  private readonly list: Member[] = [];
  private probeOrder: MemberId[] = [];
  private probeIndex = 0;
  private seq: number;
  private userSeq: number;
  private readonly acks = new Map<number, () => void>();
  private readonly suspicions = new Map<MemberId, Suspicion>();
  private readonly queue = new BroadcastQueue();
  private readonly seen = new Map<string, number>();
  private readonly tickCancels: (() => void)[] = [];
  private running = false;
  /** Members alive or suspect (not counting us), kept up to date: timeouts scale with it on every packet. */
  private live = 0;
  private readonly counters = { probes: 0, probeFailures: 0, suspicions: 0, refutes: 0, pushPulls: 0, pushPullFailures: 0, misdirectedPings: 0 };

  constructor(private readonly o: SwimOptions) {
    this.id = o.id;
    this.addr = o.addr;
    this.port = o.port;
    this.cfg = o.config;
    this.inc = o.incarnation ?? Math.floor(o.timers.now() / 1000);
    this.seq = Math.floor(o.random() * 0x1_0000_0000) >>> 0;
    this.userSeq = Math.floor(o.random() * 0x1_0000_0000) >>> 0;
  }

  get incarnation(): number { return this.inc; }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.o.announce !== false) this.queue.push(this.id, this.selfAlive());
    const c = this.cfg;
    // Staggered starts, as memberlist does, so a cluster started at once does not probe in lockstep.
    this.every(c.probeIntervalMs, () => this.probe());
    this.every(c.gossipIntervalMs, () => this.gossip());
    if (c.pushPullIntervalMs > 0) this.every(c.pushPullIntervalMs, () => this.periodicPushPull());
  }

  stop(): void {
    this.running = false;
    for (const c of this.tickCancels.splice(0)) c();
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
    this.acks.clear();
  }

  /** Learn a member's address without a round trip (the simulation's pre-formed cluster). */
  addKnown(id: MemberId, addr: string, port: number): void {
    if (id === this.id || this.byId.has(id)) return;
    this.addMember({ id, addr, port, state: 'alive', inc: 0, stateChange: this.o.timers.now() }, false);
  }

  broadcast(data: Uint8Array): void {
    const seq = this.userSeq;
    this.userSeq = (this.userSeq + 1) >>> 0;
    const key = `u:${this.id}:${seq}`;
    this.seen.set(key, this.o.timers.now());
    this.queue.push(key, { t: 'user', origin: this.id, seq, data });
  }

  members(): MemberInfo[] {
    const self: MemberInfo = { id: this.id, addr: this.addr, port: this.port, state: 'alive', incarnation: this.inc, lastContact: this.o.timers.now() };
    return [self, ...this.list.map((m) => this.info(m))];
  }

  stats(): SwimStats {
    let alive = 1, suspect = 0, dead = 0;
    for (const m of this.list) {
      if (m.state === 'alive') alive++;
      else if (m.state === 'suspect') suspect++;
      else dead++;
    }
    return { members: this.list.length + 1, alive, suspect, dead, incarnation: this.inc, ...this.counters, queuedBroadcasts: this.queue.size };
  }

  /** Push-pull with seeds (members we may not know yet); returns how many answered. */
  async join(seeds: readonly Endpoint[]): Promise<number> {
    let ok = 0;
    for (const s of seeds) {
      if (s.addr === this.addr && s.port === this.port) continue;
      if (await this.pushPullWith(s, true)) ok++;
    }
    return ok;
  }

  /** Incoming datagram (already authenticated and decoded by the transport). */
  handlePacket(p: Packet): void {
    if (!this.running) return;
    const sender = this.byId.get(p.from);
    if (sender !== undefined) sender.lastContact = this.o.timers.now();
    for (const m of p.msgs) this.handleMsg(m);
  }

  /** Incoming push-pull (over TCP): merge theirs, answer with ours (taken before merging). */
  handlePushPull(remote: PushPullState): PushPullState {
    const local = this.localState(false);
    if (this.running) this.mergeState(remote);
    return local;
  }

  // ---- probing -------------------------------------------------------------

  private every(ms: number, fn: () => void): void {
    const idx = this.tickCancels.length;
    const loop = (): void => {
      if (!this.running) return;
      try { fn(); } catch (e) { this.o.onError?.('tick', e); }
      this.tickCancels[idx] = this.o.timers.after(ms, loop);
    };
    this.tickCancels.push(this.o.timers.after(Math.floor(this.o.random() * ms), loop));
  }

  private nextProbeTarget(): Member | undefined {
    for (let tries = 0; tries <= this.list.length + 1; tries++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.reapDead();
        this.probeOrder = this.list.map((m) => m.id);
        this.shuffle(this.probeOrder);
        this.probeIndex = 0;
        if (this.probeOrder.length === 0) return undefined;
      }
      const m = this.byId.get(this.probeOrder[this.probeIndex++]!);
      if (m !== undefined && (m.state === 'alive' || m.state === 'suspect')) return m;
    }
    return undefined;
  }

  private probe(): void {
    this.pruneSeen();
    const target = this.nextProbeTarget();
    if (target === undefined) return;
    this.counters.probes++;
    const seq = this.nextSeq();
    const incAtProbe = target.inc;
    const cancels: (() => void)[] = [];
    let acked = false;
    this.acks.set(seq, () => {
      acked = true;
      this.acks.delete(seq);
      for (const c of cancels) c();
    });
    const ping: Msg = { t: 'ping', seq, target: target.id, srcAddr: this.addr, srcPort: this.port };
    // Lifeguard's buddy system: a suspect hears of its suspicion directly, so it can refute even
    // when the gossiped suspicion was used up while it was unreachable.
    if (target.state === 'suspect') this.send(target, [ping, { t: 'suspect', id: target.id, inc: target.inc, from: this.id }]);
    else this.sendWithNews(target, ping);
    cancels.push(this.o.timers.after(this.cfg.probeTimeoutMs, () => {
      if (acked || !this.running) return;
      for (const via of this.randomMembers(this.cfg.indirectChecks, (m) => m.state === 'alive' && m.id !== target.id)) {
        this.send(via, [{ t: 'ping-req', seq, target: target.id, targetAddr: target.addr, targetPort: target.port, srcAddr: this.addr, srcPort: this.port }]);
      }
    }));
    cancels.push(this.o.timers.after(this.cfg.probeIntervalMs, () => {
      if (acked || !this.running) return;
      this.acks.delete(seq);
      this.counters.probeFailures++;
      this.onSuspect({ t: 'suspect', id: target.id, inc: incAtProbe, from: this.id });
    }));
  }

  private gossip(): void {
    if (this.queue.size === 0) return;
    const overhead = packetOverhead(this.id);
    const limit = this.retransmitLimit();
    for (const m of this.randomMembers(this.cfg.gossipNodes, (x) => x.state === 'alive' || x.state === 'suspect')) {
      const msgs = this.queue.take(this.cfg.maxPacketBytes - overhead, limit);
      if (msgs.length === 0) break;
      this.send(m, msgs);
    }
  }

  private periodicPushPull(): void {
    // Reconnect, as Serf does: a member we hold dead may only have been cut off; an exchange with it
    // makes each side refute the other's verdict, and the next one heals a partition for good.
    const [dead] = this.randomMembers(1, (m) => m.state === 'dead');
    if (dead !== undefined) void this.pushPullWith(dead, false);
    const [peer] = this.randomMembers(1, (m) => m.state === 'alive');
    if (peer !== undefined) {
      void this.pushPullWith(peer, false);
      return;
    }
    // Alone (every member dead or none known yet): try to (re)join from the seeds.
    const seeds = this.o.seeds?.() ?? [];
    if (seeds.length > 0) void this.join([seeds[Math.floor(this.o.random() * seeds.length)]!]);
  }

  private async pushPullWith(to: Endpoint, join: boolean): Promise<boolean> {
    this.counters.pushPulls++;
    try {
      const remote = await this.o.transport.pushPull(to, this.localState(join));
      if (this.running) this.mergeState(remote);
      return true;
    } catch (e) {
      this.counters.pushPullFailures++;
      this.o.onError?.(`push-pull with ${to.addr}:${to.port}`, e);
      return false;
    }
  }

  // ---- messages ------------------------------------------------------------

  private handleMsg(m: Msg): void {
    switch (m.t) {
      case 'ping':
        if (m.target !== this.id) { this.counters.misdirectedPings++; return; }
        this.sendWithNews({ addr: m.srcAddr, port: m.srcPort }, { t: 'ack', seq: m.seq });
        return;
      case 'ping-req': {
        const seq = this.nextSeq();
        const cancel = this.o.timers.after(this.cfg.probeTimeoutMs, () => this.acks.delete(seq));
        this.acks.set(seq, () => {
          cancel();
          this.acks.delete(seq);
          this.send({ addr: m.srcAddr, port: m.srcPort }, [{ t: 'ack', seq: m.seq }]);
        });
        this.send({ addr: m.targetAddr, port: m.targetPort }, [{ t: 'ping', seq, target: m.target, srcAddr: this.addr, srcPort: this.port }]);
        return;
      }
      case 'ack':
        this.acks.get(m.seq)?.();
        return;
      case 'alive': return this.onAlive(m);
      case 'suspect': return this.onSuspect(m);
      case 'dead': return this.onDead(m);
      case 'user': {
        const key = `u:${m.origin}:${m.seq}`;
        if (this.seen.has(key)) return;
        this.seen.set(key, this.o.timers.now());
        this.queue.push(key, m);
        if (m.origin !== this.id) this.o.delegate?.notifyMessage(m.data, m.origin);
        return;
      }
    }
  }

  private onAlive(a: Extract<Msg, { t: 'alive' }>): void {
    if (a.id === this.id) {
      // Someone holds a newer alive of ours (our previous life's): outrank it.
      if (a.inc > this.inc) this.refute(a.inc);
      return;
    }
    const m = this.byId.get(a.id);
    if (m === undefined) {
      const fresh: Member = { id: a.id, addr: a.addr, port: a.port, state: 'alive', inc: a.inc, stateChange: this.o.timers.now() };
      this.addMember(fresh);
      this.queue.push(a.id, a);
      this.o.delegate?.notifyMember(this.info(fresh));
      return;
    }
    if (a.inc <= m.inc) return;
    this.cancelSuspicion(a.id);
    const changed = m.state !== 'alive' || m.addr !== a.addr || m.port !== a.port;
    m.inc = a.inc;
    m.addr = a.addr;
    m.port = a.port;
    if (m.state !== 'alive') this.setState(m, 'alive');
    this.queue.push(a.id, a);
    if (changed) this.o.delegate?.notifyMember(this.info(m));
  }

  private onSuspect(s: Extract<Msg, { t: 'suspect' }>): void {
    if (s.id === this.id) {
      if (s.inc >= this.inc) this.refute(s.inc);
      return;
    }
    const m = this.byId.get(s.id);
    if (m === undefined || s.inc < m.inc) return;
    const sus = this.suspicions.get(s.id);
    if (sus !== undefined) {
      if (this.confirm(s.id, sus, s.from)) this.queue.push(s.id, s);
      return;
    }
    if (m.state !== 'alive') return;
    this.setState(m, 'suspect');
    m.inc = s.inc;
    this.counters.suspicions++;
    this.queue.push(s.id, s);
    this.startSuspicion(m, s.from);
    this.o.delegate?.notifyMember(this.info(m));
  }

  private onDead(d: Extract<Msg, { t: 'dead' }>): void {
    if (d.id === this.id) {
      if (d.inc >= this.inc) this.refute(d.inc);
      return;
    }
    const m = this.byId.get(d.id);
    if (m === undefined || d.inc < m.inc || m.state === 'dead' || m.state === 'left') return;
    this.cancelSuspicion(d.id);
    this.setState(m, d.from === d.id ? 'left' : 'dead');
    m.inc = d.inc;
    this.queue.push(d.id, d);
    this.o.delegate?.notifyMember(this.info(m));
  }

  private refute(seenInc: number): void {
    this.inc = Math.max(this.inc, seenInc) + 1;
    this.counters.refutes++;
    this.queue.push(this.id, this.selfAlive());
  }

  private startSuspicion(m: Member, from: MemberId): void {
    const n = this.estimatedSize();
    const minMs = suspicionMinMs(this.cfg.suspicionMult, n, this.cfg.probeIntervalMs);
    const sus: Suspicion = {
      inc: m.inc, from: new Set([from]), confirmations: 0, wanted: confirmationsWanted(this.cfg.suspicionMult, n),
      start: this.o.timers.now(), minMs, maxMs: minMs * this.cfg.suspicionMaxMult, cancel: () => {},
    };
    this.suspicions.set(m.id, sus);
    this.armSuspicion(m.id, sus);
  }

  private armSuspicion(id: MemberId, sus: Suspicion): void {
    sus.cancel();
    const timeout = suspicionTimeoutMs(sus.confirmations, sus.wanted, sus.minMs, sus.maxMs);
    const left = Math.max(0, sus.start + timeout - this.o.timers.now());
    sus.cancel = this.o.timers.after(left, () => {
      if (!this.running || this.suspicions.get(id) !== sus) return;
      this.suspicions.delete(id);
      this.onDead({ t: 'dead', id, inc: sus.inc, from: this.id });
    });
  }

  /** An independent confirmation shortens the timeout; true when it counted (then it is re-gossiped). */
  private confirm(id: MemberId, sus: Suspicion, from: MemberId): boolean {
    if (sus.confirmations >= sus.wanted || sus.from.has(from)) return false;
    sus.from.add(from);
    sus.confirmations++;
    this.armSuspicion(id, sus);
    return true;
  }

  private cancelSuspicion(id: MemberId): void {
    const s = this.suspicions.get(id);
    if (s === undefined) return;
    s.cancel();
    this.suspicions.delete(id);
  }

  private mergeState(s: PushPullState): void {
    for (const m of s.members) {
      switch (m.state) {
        case 'alive': this.onAlive({ t: 'alive', id: m.id, addr: m.addr, port: m.port, inc: m.inc }); break;
        case 'left': this.onDead({ t: 'dead', id: m.id, inc: m.inc, from: m.id }); break;
        // As memberlist: another's verdict of death only makes us suspect, so we probe before believing it.
        default: this.onSuspect({ t: 'suspect', id: m.id, inc: m.inc, from: s.from }); break;
      }
    }
    if (s.user.length > 0) {
      try { this.o.delegate?.mergeRemoteState(s.user, s.from); } catch (e) { this.o.onError?.('merging remote state', e); }
    }
  }

  // ---- helpers -------------------------------------------------------------

  private localState(join: boolean): PushPullState {
    const members: PushPullMember[] = [{ id: this.id, addr: this.addr, port: this.port, state: 'alive', inc: this.inc }];
    for (const m of this.list) members.push({ id: m.id, addr: m.addr, port: m.port, state: m.state, inc: m.inc });
    return { from: this.id, join, members, user: this.o.delegate?.localState() ?? EMPTY };
  }

  private selfAlive(): Msg { return { t: 'alive', id: this.id, addr: this.addr, port: this.port, inc: this.inc }; }

  private send(to: Endpoint, msgs: Msg[]): void {
    try { this.o.transport.sendPacket({ addr: to.addr, port: to.port }, { from: this.id, msgs }); } catch (e) { this.o.onError?.('send', e); }
  }

  /** `primary` plus as much queued news as fits the datagram. */
  private sendWithNews(to: Endpoint, primary: Msg): void {
    const budget = this.cfg.maxPacketBytes - packetOverhead(this.id) - msgSize(primary);
    this.send(to, [primary, ...this.queue.take(budget, this.retransmitLimit())]);
  }

  private retransmitLimit(): number { return retransmitLimit(this.cfg.retransmitMult, this.estimatedSize()); }

  private estimatedSize(): number { return this.live + 1; }

  private setState(m: Member, state: MemberState): void {
    const wasLive = m.state === 'alive' || m.state === 'suspect';
    const isLive = state === 'alive' || state === 'suspect';
    this.live += (isLive ? 1 : 0) - (wasLive ? 1 : 0);
    m.state = state;
    m.stateChange = this.o.timers.now();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  private addMember(m: Member, probeSoon = true): void {
    this.byId.set(m.id, m);
    this.list.push(m);
    if (m.state === 'alive' || m.state === 'suspect') this.live++;
    if (!probeSoon) return;
    // A newcomer is probed in this round, at a random place, as memberlist does.
    const at = this.probeIndex + Math.floor(this.o.random() * (this.probeOrder.length - this.probeIndex + 1));
    this.probeOrder.splice(at, 0, m.id);
  }

  private reapDead(): void {
    const now = this.o.timers.now();
    for (let i = this.list.length - 1; i >= 0; i--) {
      const m = this.list[i]!;
      if ((m.state === 'dead' || m.state === 'left') && now - m.stateChange > this.cfg.deadReapMs) {
        this.byId.delete(m.id);
        this.list[i] = this.list[this.list.length - 1]!;
        this.list.pop();
      }
    }
  }

  private pruneSeen(): void {
    const horizon = this.o.timers.now() - this.cfg.seenTtlMs;
    for (const [k, at] of this.seen) {
      if (at > horizon && this.seen.size <= 100_000) break;
      this.seen.delete(k);
    }
  }

  /** Up to k distinct random members matching `ok` (bounded tries, as memberlist's kRandomNodes). */
  private randomMembers(k: number, ok: (m: Member) => boolean): Member[] {
    const out: Member[] = [];
    const n = this.list.length;
    for (let tries = 0; out.length < k && tries < 3 * n + 3 && n > 0; tries++) {
      const m = this.list[Math.floor(this.o.random() * n)]!;
      if (ok(m) && !out.includes(m)) out.push(m);
    }
    return out;
  }

  private shuffle<T>(a: T[]): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.o.random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }

  private info(m: Member): MemberInfo {
    return { id: m.id, addr: m.addr, port: m.port, state: m.state, incarnation: m.inc, ...(m.lastContact !== undefined ? { lastContact: m.lastContact } : {}) };
  }
}
