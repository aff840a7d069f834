// The address pool: the pure choice (round robin, skips, exhaustion) on plain
// data, and the stateful pool over an in-memory storage that records every
// write, so "on disk before handed out" is asserted as an order of events.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AddressPool,
  EMPTY_POOL,
  type StateStorage,
  chooseAddress,
  fileStorage,
  parsePoolState,
  planAllocate,
  planRelease,
  poolFile,
} from '../../ipam/address-pool.js';
import { parseCidr, parseIp } from '../../ipam/cidr.js';
import { isWeftError } from '../../ipam/errors.js';

const NET = parseCidr('10.42.7.0/24');
const ip = parseIp;
const key = (containerId: string, ifname = 'eth0') => ({ containerId, ifname });
const NOW = new Date('2024-01-01T00:00:00Z');

/** Storage in memory that logs each write, optionally slowly, optionally failing. */
function memStorage(initial?: string) {
  const events: string[] = [];
  let text = initial;
  let failNext = false;
  const storage: StateStorage = {
    where: 'mem',
    read: async () => text,
    write: async (t) => {
      await new Promise((r) => setTimeout(r, 1));
      if (failNext) {
        failNext = false;
        throw new Error('disk full');
      }
      text = t;
      events.push(`write ${(JSON.parse(t) as { reservations: unknown[] }).reservations.length}`);
    },
  };
  return { storage, events, text: () => text, failNextWrite: () => (failNext = true) };
}

describe('chooseAddress (pure)', () => {
  it('never gives the network, gateway (.1) or broadcast address', () => {
    expect(chooseAddress(NET, new Set())).toBe(ip('10.42.7.2'));
    const all = new Set<number>();
    let last: number | undefined;
    for (let i = 0; i < 253; i++) {
      const a = chooseAddress(NET, all, last)!;
      expect(a).toBeDefined();
      all.add(a);
      last = a;
    }
    expect(all.has(ip('10.42.7.0'))).toBe(false);
    expect(all.has(ip('10.42.7.1'))).toBe(false);
    expect(all.has(ip('10.42.7.255'))).toBe(false);
    expect(chooseAddress(NET, all, last)).toBeUndefined();
  });

  it('skips reserved addresses and continues round-robin after the last one, wrapping', () => {
    expect(chooseAddress(NET, new Set([ip('10.42.7.2'), ip('10.42.7.3')]))).toBe(ip('10.42.7.4'));
    expect(chooseAddress(NET, new Set(), ip('10.42.7.9'))).toBe(ip('10.42.7.10'));
    expect(chooseAddress(NET, new Set(), ip('10.42.7.254'))).toBe(ip('10.42.7.2'));
    // A `last` outside the subnet (an old subnet's) starts from the beginning.
    expect(chooseAddress(NET, new Set(), ip('10.42.8.9'))).toBe(ip('10.42.7.2'));
  });

  it('has nothing to give in /31 and /32, one address in /30', () => {
    expect(chooseAddress(parseCidr('10.42.7.0/31'), new Set())).toBeUndefined();
    expect(chooseAddress(parseCidr('10.42.7.0/32'), new Set())).toBeUndefined();
    expect(chooseAddress(parseCidr('10.42.7.0/30'), new Set())).toBe(ip('10.42.7.2'));
  });
});

describe('planAllocate / planRelease (pure)', () => {
  it('is idempotent per key and distinct across keys', () => {
    const a = planAllocate(EMPTY_POOL, NET, key('a'), NOW);
    const again = planAllocate(a.state, NET, key('a'), NOW);
    expect(again.fresh).toBe(false);
    expect(again.reservation.ip).toBe(a.reservation.ip);
    const b = planAllocate(a.state, NET, key('a', 'eth1'), NOW);
    expect(b.reservation.ip).not.toBe(a.reservation.ip);
  });

  it('does not reuse a freed address at once (round robin)', () => {
    let s = planAllocate(EMPTY_POOL, NET, key('a'), NOW).state; // .2
    s = planRelease(s, key('a')).state;
    const b = planAllocate(s, NET, key('b'), NOW);
    expect(b.reservation.ip).toBe('10.42.7.3');
  });

  it('release is idempotent', () => {
    const s = planAllocate(EMPTY_POOL, NET, key('a'), NOW).state;
    const once = planRelease(s, key('a'));
    expect(once.released?.ip).toBe('10.42.7.2');
    expect(planRelease(once.state, key('a')).released).toBeUndefined();
  });

  it('gives a requested address only when assignable and free', () => {
    const s = planAllocate(EMPTY_POOL, NET, key('a'), NOW, ip('10.42.7.50')).state;
    expect(s.reservations[0]!.ip).toBe('10.42.7.50');
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error('did not throw');
    };
    const taken = err(() => planAllocate(s, NET, key('b'), NOW, ip('10.42.7.50')));
    expect(isWeftError(taken, 'CONFLICT') && taken.message).toMatch(/already held by container a/);
    for (const bad of ['10.42.7.0', '10.42.7.1', '10.42.7.255', '10.42.8.5']) {
      const e = err(() => planAllocate(s, NET, key('b'), NOW, ip(bad)));
      expect(isWeftError(e, 'INVALID_ARGUMENT') && e.message).toMatch(/^ip: /);
    }
  });

  it('reports EXHAUSTED with a clear message when the subnet is full', () => {
    const small = parseCidr('10.42.7.0/29'); // .2 .. .6 assignable: 5
    let s = EMPTY_POOL;
    for (let i = 0; i < 5; i++) s = planAllocate(s, small, key(`c${i}`), NOW).state;
    try {
      planAllocate(s, small, key('c5'), NOW);
      throw new Error('did not throw');
    } catch (e) {
      expect(isWeftError(e, 'EXHAUSTED')).toBe(true);
      expect((e as Error).message).toBe('no free address left in 10.42.7.0/29: all 5 assignable addresses are reserved; detach unused containers (weft ps lists them)');
    }
  });

  it('replaces a reservation from an old subnet, which lists as stale', () => {
    const s = planAllocate(EMPTY_POOL, NET, key('a'), NOW).state;
    const pool = parseCidr('10.42.9.0/24');
    const moved = planAllocate(s, pool, key('a'), NOW);
    expect(moved.fresh).toBe(true);
    expect(moved.reservation.ip).toBe('10.42.9.2');
    expect(moved.state.reservations).toHaveLength(1);
  });
});

describe('AddressPool', () => {
  it('100 parallel allocations get 100 distinct addresses, never .0/.1/.255', async () => {
    const mem = memStorage();
    const pool = await AddressPool.open(mem.storage);
    const got = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.allocate(NET, key(`c${i}`))));
    const ips = got.map((g) => g.reservation.ip);
    expect(new Set(ips).size).toBe(100);
    expect(ips.filter((a) => /\.(0|1|255)$/.test(a))).toEqual([]);
    expect(mem.events).toHaveLength(100);
  });

  it('writes the reservation before it hands the address out', async () => {
    const mem = memStorage();
    const pool = await AddressPool.open(mem.storage);
    const order: string[] = [];
    const origWrite = mem.storage.write;
    mem.storage.write = async (t) => {
      await origWrite(t);
      order.push(`written ${(JSON.parse(t) as { reservations: { ip: string }[] }).reservations.map((r) => r.ip).join(',')}`);
    };
    const r = await pool.allocate(NET, key('a'));
    order.push(`handed out ${r.reservation.ip}`);
    expect(order).toEqual(['written 10.42.7.2', 'handed out 10.42.7.2']);
  });

  it('a failed write hands nothing out and leaves the pool unchanged', async () => {
    const mem = memStorage();
    const pool = await AddressPool.open(mem.storage);
    mem.failNextWrite();
    await expect(pool.allocate(NET, key('a'))).rejects.toThrow('disk full');
    expect(pool.get(key('a'))).toBeUndefined();
    expect(pool.list(NET)).toEqual([]);
    // The mutex survives a failure: the next call runs.
    expect((await pool.allocate(NET, key('a'))).reservation.ip).toBe('10.42.7.2');
  });

  it('an idempotent allocate or release writes nothing', async () => {
    const mem = memStorage();
    const pool = await AddressPool.open(mem.storage);
    await pool.allocate(NET, key('a'));
    await pool.allocate(NET, key('a'));
    await pool.release(key('a'));
    await pool.release(key('a'));
    expect(mem.events).toEqual(['write 1', 'write 0']);
  });

  it('survives a reload from disk (a real state dir), and lists stale reservations after a subnet change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-pool-'));
    try {
      const p1 = await AddressPool.open(fileStorage(poolFile(dir)));
      await p1.allocate(NET, key('a'));
      await p1.allocate(NET, key('b'));
      await p1.release(key('a'));
      const p2 = await AddressPool.open(fileStorage(poolFile(dir)));
      expect(p2.get(key('b'))?.ip).toBe('10.42.7.3');
      // Round robin resumes after the last address, even across the restart.
      expect((await p2.allocate(NET, key('c'))).reservation.ip).toBe('10.42.7.4');
      const listed = p2.list(parseCidr('10.42.9.0/24'));
      expect(listed.map((r) => [r.containerId, r.stale])).toEqual([
        ['b', true],
        ['c', true],
      ]);
      expect(JSON.parse(await readFile(poolFile(dir), 'utf8')).version).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a corrupt file instead of starting empty', () => {
    expect(() => parsePoolState('{"version":1', 'f')).toThrow(/address pool f is corrupt/);
    expect(() => parsePoolState('{"version":1,"last":{},"reservations":[{"ip":1}]}', 'f')).toThrow(/bad reservation/);
  });
});
