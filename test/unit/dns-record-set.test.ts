// The record set's merge laws, checked as properties over random operation
// sequences from a seeded generator (reproducible: the seed is in the test
// name): every delivery order, with duplicates and drops repaired by
// push-pull, gives every replica the same final set, and the store's owner
// rules (re-assert after a restart, hiding dead owners, collecting tombstones)
// keep that set right.

import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../agent/dns/hybrid-clock.js';
import { decodeRecords, encodeMessages, encodeRecords, MAX_MESSAGE_BYTES } from '../../agent/dns/record-codec.js';
import { type DnsRecord, mergeLists, RecordSet, recordKey } from '../../agent/dns/record-set.js';
import { RecordStore } from '../../agent/dns/record-store.js';
import { seededRandom as rng } from '../lab/seeded-random.js';

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
function shuffle<T>(r: () => number, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
const canon = (xs: readonly DnsRecord[]): string => JSON.stringify([...xs].sort((a, b) => (recordKey(a) < recordKey(b) ? -1 : recordKey(a) > recordKey(b) ? 1 : 0)));

/** A random history of writes by 3 owners: adds and removes over a few names and addresses. */
function history(r: () => number, n: number): DnsRecord[] {
  const owners = ['198.18.0.11', '198.18.0.12', '198.18.0.13'];
  let wall = 1_700_000_000_000;
  const clocks = new Map(owners.map((o) => [o, new HybridClock(() => wall)]));
  const writes: DnsRecord[] = [];
  for (let i = 0; i < n; i++) {
    if (r() < 0.3) wall += Math.floor(r() * 5);
    const owner = pick(r, owners);
    writes.push({
      name: pick(r, ['web', 'db', 'cache', 'pod.ns']),
      address: pick(r, ['10.42.1.2', '10.42.1.3', '10.42.2.2', 'fd00::2']),
      owner,
      containerId: pick(r, ['c1', 'c2', 'static']),
      version: clocks.get(owner)!.next(),
      deleted: r() < 0.4,
    });
  }
  return writes;
}

describe('record set: merge laws', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`commutative, associative, idempotent (seed ${seed})`, () => {
      const r = rng(seed);
      const w = history(r, 60);
      const a = w.filter(() => r() < 0.5);
      const b = w.filter(() => r() < 0.5);
      const c = w.filter(() => r() < 0.5);
      expect(canon(mergeLists(a, b))).toBe(canon(mergeLists(b, a)));
      expect(canon(mergeLists(mergeLists(a, b), c))).toBe(canon(mergeLists(a, mergeLists(b, c))));
      expect(canon(mergeLists(a, a))).toBe(canon(mergeLists(a, [])));
      expect(canon(mergeLists(mergeLists(a, b), b))).toBe(canon(mergeLists(a, b)));
    });

    it(`every delivery order with duplicates and drops, then push-pull, converges (seed ${seed})`, () => {
      const r = rng(seed * 7919);
      const w = history(r, 80);
      const expected = canon(mergeLists(w, []));
      const replicas = Array.from({ length: 5 }, () => new RecordSet());
      for (const s of replicas) {
        // Each replica hears a random part of the broadcasts, some twice, in its own order.
        const heard = shuffle(r, w.flatMap((x) => (r() < 0.2 ? [] : r() < 0.3 ? [x, x] : [x])));
        for (const x of heard) s.merge(x);
      }
      // Every write reached at least one replica (its owner's); push-pull in a random order until all met.
      for (const x of w) pick(r, replicas).merge(x);
      for (let round = 0; round < 3; round++) {
        for (const i of shuffle(r, [0, 1, 2, 3, 4])) {
          const j = pick(r, [0, 1, 2, 3, 4].filter((k) => k !== i));
          for (const x of replicas[j]!.all()) replicas[i]!.merge(x);
          for (const x of replicas[i]!.all()) replicas[j]!.merge(x);
        }
      }
      // A ring pass makes sure every state has met every other (random pairs may not have).
      for (let k = 0; k < 2 * replicas.length; k++) {
        const from = replicas[k % 5]!;
        const to = replicas[(k + 1) % 5]!;
        for (const x of from.all()) to.merge(x);
      }
      for (const s of replicas) expect(canon(s.all())).toBe(expected);
    });
  }

  it('a tombstone beats a live entry of the same version, whatever the order', () => {
    const live: DnsRecord = { name: 'web', address: '10.42.1.2', owner: 'h1', containerId: 'c1', version: 5, deleted: false };
    const dead = { ...live, deleted: true };
    expect(mergeLists([live], [dead])).toEqual([dead]);
    expect(mergeLists([dead], [live])).toEqual([dead]);
  });

  it('collects tombstones older than the bound, never live entries', () => {
    const s = new RecordSet();
    s.merge({ name: 'a', address: '10.0.0.1', owner: 'h', containerId: 'c', version: 10, deleted: true });
    s.merge({ name: 'b', address: '10.0.0.1', owner: 'h', containerId: 'c', version: 10, deleted: false });
    s.merge({ name: 'c', address: '10.0.0.1', owner: 'h', containerId: 'c', version: 30, deleted: true });
    expect(s.collect(20)).toBe(1);
    expect(s.all().map((x) => x.name).sort()).toEqual(['b', 'c']);
  });
});

describe('hybrid clock', () => {
  it('increases across a restart even when the wall clock stands still, once it has seen the old versions', () => {
    let wall = 1_000;
    const before = new HybridClock(() => wall);
    const v1 = before.next();
    const v2 = before.next();
    expect(v2).toBeGreaterThan(v1);
    const after = new HybridClock(() => wall);
    after.observe(v2);
    expect(after.next()).toBeGreaterThan(v2);
    wall += 1;
    expect(new HybridClock(() => wall).next()).toBeGreaterThan(v2);
  });

  it('refuses versions a day or more in the future', () => {
    const c = new HybridClock(() => 1_000_000);
    expect(c.observe((1_000_000 + 25 * 3600 * 1000) * 1000)).toBe(false);
    expect(c.observe(Number.MAX_SAFE_INTEGER + 2)).toBe(false);
    expect(c.observe(-1)).toBe(false);
  });
});

describe('record codec', () => {
  it('round-trips, and skips malformed entries one by one', () => {
    const r: DnsRecord = { name: 'web', address: '10.42.1.2', owner: '198.18.0.11', containerId: 'c1', version: 1234, deleted: false };
    expect(decodeRecords(encodeRecords([r]))).toEqual({ records: [r], rejected: 0 });
    const bad = Buffer.from(JSON.stringify({ v: 1, r: [['web', '10.42.1.2', 'h', 'c', 1, 0], ['WEB!', '10.42.1.2', 'h', 'c', 1, 0], ['web', 'nope', 'h', 'c', 1, 0], ['web', '10.42.1.2', 'h', 'c', 1.5, 0], ['web', '10.42.1.2', 'h', 'c', 1, 2], 'x'] }));
    const d = decodeRecords(bad);
    expect(d.records).toHaveLength(1);
    expect(d.rejected).toBe(5);
  });

  it('rejects what is not its format, and never throws on random bytes', () => {
    expect(decodeRecords(Buffer.from('{"v":2,"r":[]}')).rejected).toBe(1);
    expect(decodeRecords(Buffer.from('null')).rejected).toBe(1);
    const r = rng(99);
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
      expect(() => decodeRecords(bytes)).not.toThrow();
    }
  });

  it('packs broadcasts under the message limit', () => {
    const many: DnsRecord[] = Array.from({ length: 40 }, (_, i) => ({ name: `name-${i}.some-namespace`, address: `10.42.1.${i + 2}`, owner: '198.18.0.11', containerId: 'a'.repeat(64), version: 1 + i, deleted: false }));
    const msgs = encodeMessages(many);
    expect(msgs.length).toBeGreaterThan(1);
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(msgs.flatMap((m) => decodeRecords(m).records)).toEqual(many);
  });
});

/** Stores joined by a fake network that delivers each broadcast to chosen stores. */
function cluster(ids: string[], wall: () => number): { stores: Map<string, RecordStore>; outbox: { from: string; msg: Uint8Array }[] } {
  const outbox: { from: string; msg: Uint8Array }[] = [];
  const stores = new Map(ids.map((id) => [id, new RecordStore({ localId: id, wallMs: wall, broadcast: (msg) => outbox.push({ from: id, msg }) })]));
  return { stores, outbox };
}
function deliverAll(c: ReturnType<typeof cluster>): void {
  while (c.outbox.length > 0) {
    const { from, msg } = c.outbox.shift()!;
    for (const [id, s] of c.stores) if (id !== from) s.notifyMessage(msg, from);
  }
}
function pushPull(c: ReturnType<typeof cluster>): void {
  for (const [a, sa] of c.stores) for (const [b, sb] of c.stores) if (a !== b) sb.mergeRemoteState(sa.localState(), a);
  deliverAll(c);
}

describe('record store', () => {
  it('answers a name on every store after a broadcast, with every address of a service', () => {
    const c = cluster(['h1', 'h2', 'h3'], () => 1_000_000);
    c.stores.get('h1')!.add('web', '10.42.1.2', 'c1');
    c.stores.get('h2')!.add('web', '10.42.2.2', 'c2');
    deliverAll(c);
    for (const s of c.stores.values()) {
      expect(s.lookup('web')).toEqual(['10.42.1.2', '10.42.2.2']);
      expect(s.reverse('10.42.2.2')).toEqual(['web']);
    }
    c.stores.get('h3')!.add('pod.ns', '10.42.3.2', 'c3');
    deliverAll(c);
    expect(c.stores.get('h1')!.isBetween('ns')).toBe(true);
    expect(c.stores.get('h1')!.isBetween('web')).toBe(false);
    c.stores.get('h1')!.remove('web', '10.42.1.2', 'c1');
    deliverAll(c);
    for (const s of c.stores.values()) expect(s.lookup('web')).toEqual(['10.42.2.2']);
  });

  it("hides a dead member's records and shows them again when it is alive", () => {
    const c = cluster(['h1', 'h2'], () => 1_000_000);
    c.stores.get('h2')!.add('db', '10.42.2.5', 'c9');
    deliverAll(c);
    const h1 = c.stores.get('h1')!;
    h1.notifyMember({ id: 'h2', addr: 'h2', port: 7946, state: 'dead', incarnation: 3 });
    expect(h1.lookup('db')).toBeUndefined();
    expect(h1.list().find((r) => r.name === 'db')?.visible).toBe(false);
    h1.notifyMember({ id: 'h2', addr: 'h2', port: 7946, state: 'alive', incarnation: 4 });
    expect(h1.lookup('db')).toEqual(['10.42.2.5']);
  });

  it("drops a member's records after an hour dead, refuses them from peers meanwhile, and takes them back once it is alive", () => {
    let wall = 1_000_000;
    const c = cluster(['h1', 'h2', 'h3'], () => wall);
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((id) => c.stores.get(id)!);
    h2!.add('db', '10.42.2.5', 'c9');
    deliverAll(c);
    const dead = { id: 'h2', addr: 'h2', port: 7946, state: 'dead', incarnation: 3 } as const;
    h1!.notifyMember(dead);
    wall += 59 * 60_000;
    h1!.collect();
    expect(h1!.list().filter((r) => r.owner === 'h2')).toHaveLength(1); // hidden, still held
    wall += 60_000;
    h1!.collect();
    expect(h1!.list().filter((r) => r.owner === 'h2')).toEqual([]);
    expect(h1!.counters.reaped).toBe(1);
    // h3 has not reaped yet (it learned later): its push-pull does not bring them back to h1.
    h1!.mergeRemoteState(h3!.localState(), 'h3');
    expect(h1!.list().filter((r) => r.owner === 'h2')).toEqual([]);
    expect(h1!.counters.reaped).toBe(2);
    // h2 comes back: alive again, its state is taken as before.
    h1!.notifyMember({ ...dead, state: 'alive', incarnation: 4 });
    h1!.mergeRemoteState(h2!.localState(), 'h2');
    expect(h1!.lookup('db')).toEqual(['10.42.2.5']);
  });

  it('a restarted owner tombstones its records from before the restart that it no longer has', () => {
    let wall = 1_000_000;
    const c = cluster(['h1', 'h2'], () => wall);
    c.stores.get('h1')!.add('old', '10.42.1.9', 'gone');
    c.stores.get('h1')!.add('kept', '10.42.1.3', 'c3');
    deliverAll(c);
    // h1 restarts: a fresh store, the same wall time; it re-announces only what its attachments hold.
    const fresh = new RecordStore({ localId: 'h1', wallMs: () => wall, broadcast: (msg) => c.outbox.push({ from: 'h1', msg }) });
    c.stores.set('h1', fresh);
    fresh.add('kept', '10.42.1.3', 'c3');
    wall += 1;
    pushPull(c);
    for (const s of c.stores.values()) {
      expect(s.lookup('old')).toBeUndefined();
      expect(s.lookup('kept')).toEqual(['10.42.1.3']);
    }
    expect(fresh.counters.reasserted).toBeGreaterThan(0);
  });

  it('a live record resurrected after its tombstone was collected is removed again by its owner', () => {
    let wall = 1_000_000;
    const c = cluster(['h1', 'h2', 'h3'], () => wall);
    const h1 = c.stores.get('h1')!;
    h1.add('web', '10.42.1.2', 'c1');
    deliverAll(c);
    const stale = c.stores.get('h3')!.localState(); // h3 is partitioned from here on
    h1.remove('web', '10.42.1.2', 'c1');
    for (const id of ['h2']) c.stores.get(id)!.notifyMessage(c.outbox.shift()!.msg, 'h1');
    wall += 20 * 60 * 1000;
    for (const s of [h1, c.stores.get('h2')!]) s.collect();
    c.stores.get('h2')!.mergeRemoteState(stale, 'h3'); // the stale live entry comes back to h2
    expect(c.stores.get('h2')!.lookup('web')).toEqual(['10.42.1.2']);
    pushPull(c);
    for (const s of c.stores.values()) expect(s.lookup('web')).toBeUndefined();
  });

  it('never lets a peer write a version far in the future, nor crash on garbage', () => {
    const s = new RecordStore({ localId: 'h1', wallMs: () => 1_000_000 });
    s.notifyMessage(Buffer.from(JSON.stringify({ v: 1, r: [['web', '10.42.2.2', 'h2', 'c', 9e15, 0]] })), 'h2');
    expect(s.lookup('web')).toBeUndefined();
    s.notifyMessage(Buffer.from('\x00\xff garbage'), 'h2');
    s.mergeRemoteState(new Uint8Array(0), 'h2');
    expect(s.counters.rejected).toBe(3);
  });

  it('random operations on three stores with lossy, duplicated, reordered delivery converge after push-pull', () => {
    for (const seed of [11, 12, 13, 14]) {
      const r = rng(seed);
      let wall = 1_000_000;
      const c = cluster(['h1', 'h2', 'h3'], () => wall);
      const truth = new Map<string, Set<string>>();
      for (let i = 0; i < 60; i++) {
        wall += Math.floor(r() * 3);
        const [id, s] = pick(r, [...c.stores]);
        const name = pick(r, ['a', 'b', 'c']);
        const addr = pick(r, ['10.42.0.2', '10.42.0.3']);
        const t = truth.get(name) ?? new Set<string>();
        truth.set(name, t);
        if (r() < 0.6) {
          s.add(name, addr, 'c');
          t.add(`${id} ${addr}`);
        } else {
          s.remove(name, addr, 'c');
          t.delete(`${id} ${addr}`);
        }
        // Deliver a random part of the queue, some twice, others dropped.
        for (const m of shuffle(r, c.outbox.splice(0))) {
          for (const [to, t] of c.stores) if (to !== m.from && r() > 0.3) { t.notifyMessage(m.msg, m.from); if (r() < 0.2) t.notifyMessage(m.msg, m.from); }
        }
      }
      c.outbox.length = 0;
      pushPull(c);
      const states = [...c.stores.values()].map((s) => canon(s.list().map(({ visible: _v, ...x }) => x)));
      expect(new Set(states).size).toBe(1);
      for (const name of ['a', 'b', 'c']) {
        const views = [...c.stores.values()].map((s) => JSON.stringify(s.lookup(name) ?? null));
        expect(new Set(views).size).toBe(1);
        const want = [...new Set([...(truth.get(name) ?? [])].map((x) => x.split(' ')[1]!))].sort();
        expect(c.stores.get('h1')!.lookup(name) ?? []).toEqual(want);
      }
    }
  });
});
