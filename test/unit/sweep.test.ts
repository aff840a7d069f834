// The sweeper with the real attachment service over a fake kernel and a fake
// clock: it frees a dead attachment, an orphaned reservation and a stray veth
// in one pass, never what an attach in flight is building, re-checks under the
// key's lock, runs at start and on every interval. Also CNI GC's freeing of
// reservations without records, and `weft ps`'s stale marks.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AttachmentSweeper, type SweepKernel, listWithLiveness } from '../../agent/attachments/sweep.js';
import { psTable } from '../../agent/commands/attach.js';
import { cniService } from '../../agent/cni-service.js';
import { hostIfNameFor, isHostIfName } from '../../encap/plumb.js';
import { FakeClock, flush } from './support/fake-clock.js';
import { NET, type FakePlumber, setup } from './support/attachment-fakes.js';

const INTERVAL = 30_000;
const GRACE = 60_000;

class FakeSweepKernel implements SweepKernel {
  readonly gone = new Set<string>();
  constructor(private readonly plumber: FakePlumber) {}
  async netnsGone(path: string): Promise<boolean> {
    return this.gone.has(path);
  }
  async weftVeths(): Promise<Set<string>> {
    return new Set([...this.plumber.links].filter(isHostIfName));
  }
}

/** The service on a fake clock whose process "started" at `startedAt`; the sweeper not yet started. */
async function rig(startedAt?: number) {
  const clock = new FakeClock();
  const s = await setup(() => new Date(clock.now()));
  const kernel = new FakeSweepKernel(s.plumber);
  const sweeper = new AttachmentSweeper({ service: s.service, kernel, clock, intervalMs: INTERVAL, graceMs: GRACE, startedAt: startedAt ?? clock.now(), log: pino({ level: 'silent' }) });
  return { ...s, clock, kernel, sweeper };
}

const key = (containerId: string) => ({ containerId, ifname: 'eth0' });

describe('AttachmentSweeper', () => {
  it('one pass frees a dead attachment, an orphaned reservation and a stray veth, and keeps the live one', async () => {
    const r = await rig();
    const live = await r.service.attach({ containerId: 'live', netns: '/run/netns/live' });
    const dead = await r.service.attach({ containerId: 'dead', netns: '/proc/4242/ns/net' });
    const vanished = await r.service.attach({ containerId: 'vanished', netns: '/run/netns/v' });
    r.kernel.gone.add('/proc/4242/ns/net');
    r.plumber.links.delete(vanished.hostIfName);
    // A killed attach: reserved, plumbed, never recorded; and a veth of a key nobody knows.
    await r.pool.allocate(NET.subnet, key('cut-short'));
    r.plumber.links.add(hostIfNameFor('cut-short', 'eth0'));
    r.plumber.links.add(hostIfNameFor('unknown', 'eth0'));
    r.plumber.links.add('eth9'); // not weft's: never touched
    await r.clock.advance(GRACE);
    const events: string[] = [];
    r.service.subscribe((ev) => events.push(`${ev.kind} ${ev.attachment.containerId}`));

    expect(await r.sweeper.sweep()).toEqual({ detached: 2, released: 1, vethsDeleted: 1, skipped: 0, failed: 0 });
    // The service's detach event fires for each freed record, so DNS drops their names.
    expect(events.sort()).toEqual(['detached dead', 'detached vanished']);
    expect(r.service.list().attachments.map((a) => a.containerId)).toEqual(['live']);
    expect(r.service.reservations().map((x) => x.containerId)).toEqual(['live']);
    expect([...r.plumber.links].sort()).toEqual([live.hostIfName, 'eth9'].sort());
    expect(r.plumber.links.has(dead.hostIfName)).toBe(false);
    // A second pass finds nothing.
    expect(await r.sweeper.sweep()).toEqual({ detached: 0, released: 0, vethsDeleted: 0, skipped: 0, failed: 0 });
  });

  it('a reservation made before this process started is freed at once; a young one of this process waits for the grace period', async () => {
    const clock0 = new FakeClock().now();
    const r = await rig(clock0 + 5000);
    await r.pool.allocate(NET.subnet, key('previous-process'));
    await r.clock.advance(10_000);
    await r.pool.allocate(NET.subnet, key('this-process'));
    expect((await r.sweeper.sweep()).released).toBe(1);
    expect(r.service.reservations().map((x) => x.containerId)).toEqual(['this-process']);
    await r.clock.advance(GRACE);
    expect((await r.sweeper.sweep()).released).toBe(1);
    expect(r.service.reservations()).toEqual([]);
  });

  it('never frees what an attach in flight is building (reserved and plumbed, not yet recorded)', async () => {
    const r = await rig();
    let open!: () => void;
    const gate = new Promise<void>((res) => (open = res));
    const plumb = r.plumber.plumb.bind(r.plumber);
    r.plumber.plumb = async (spec) => {
      const out = await plumb(spec);
      await gate; // the veth exists, the record does not
      return out;
    };
    await r.clock.advance(GRACE * 2);
    const attaching = r.service.attach({ containerId: 'slow', netns: '/run/netns/slow' });
    await flush();
    expect(r.service.reservations().map((x) => x.containerId)).toEqual(['slow']);
    expect(r.plumber.links.has(hostIfNameFor('slow', 'eth0'))).toBe(true);
    // Even with a start time after the reservation (the worst case), the in-flight key protects it.
    const late = new AttachmentSweeper({ service: r.service, kernel: r.kernel, clock: r.clock, intervalMs: INTERVAL, graceMs: 0, startedAt: r.clock.now() + 1, log: pino({ level: 'silent' }) });
    expect(await late.sweep()).toEqual({ detached: 0, released: 0, vethsDeleted: 0, skipped: 0, failed: 0 });
    open();
    const a = await attaching;
    expect(r.plumber.links.has(a.hostIfName)).toBe(true);
    expect(await late.sweep()).toEqual({ detached: 0, released: 0, vethsDeleted: 0, skipped: 0, failed: 0 });
    expect(r.service.list().attachments.map((x) => x.containerId)).toEqual(['slow']);
  });

  it('detachIf re-checks under the lock: a record replaced since the look is kept', async () => {
    const r = await rig();
    const first = await r.service.attach({ containerId: 'c', netns: '/run/netns/one' });
    await r.clock.advance(1000);
    // A container restarted into a new namespace (the new request wins, a new record).
    const second = await r.service.attach({ containerId: 'c', netns: '/run/netns/two' });
    expect(second.createdAt).not.toBe(first.createdAt);
    expect(await r.service.detachIf(key('c'), (rec) => rec?.createdAt === first.createdAt, 'test')).toBeUndefined();
    expect(r.service.list().attachments).toHaveLength(1);
    expect(await r.service.detachIf(key('c'), (rec) => rec?.createdAt === second.createdAt, 'test')).toMatchObject({ released: second.ip.split('/')[0] });
    expect(r.service.list().attachments).toEqual([]);
    // A veth owned by a reservation is not a stray.
    await r.pool.allocate(NET.subnet, key('held'));
    r.plumber.links.add(hostIfNameFor('held', 'eth0'));
    expect(await r.service.deleteStrayVeth(hostIfNameFor('held', 'eth0'))).toBe(false);
    expect(r.plumber.links.has(hostIfNameFor('held', 'eth0'))).toBe(true);
  });

  it('sweeps at start and on every interval until stopped', async () => {
    const r = await rig();
    await r.sweeper.start();
    expect(r.sweeper.status().sweeps).toBe(1);
    const a = await r.service.attach({ containerId: 'x', netns: '/run/netns/x' });
    r.kernel.gone.add('/run/netns/x');
    await r.clock.advance(INTERVAL - 1);
    expect(r.service.list().attachments).toHaveLength(1);
    await r.clock.advance(1);
    await flush();
    expect(r.sweeper.status()).toMatchObject({ sweeps: 2, last: { detached: 1 } });
    expect(r.plumber.links.has(a.hostIfName)).toBe(false);
    await r.sweeper.stop();
    await r.clock.advance(INTERVAL * 3);
    expect(r.sweeper.status().sweeps).toBe(2);
  });

  it('a kernel that cannot be read frees nothing and the loop carries on', async () => {
    const r = await rig();
    await r.service.attach({ containerId: 'k', netns: '/run/netns/k' });
    r.kernel.weftVeths = async () => {
      throw new Error('netlink: EBUSY');
    };
    await expect(r.sweeper.sweep()).rejects.toThrow('EBUSY');
    expect(r.service.list().attachments).toHaveLength(1);
  });
});

describe('CNI GC and weft ps', () => {
  it('GC frees reservations without records, but not those the runtime lists as valid', async () => {
    const r = await rig();
    const cni = cniService({ attachments: r.service, notReady: () => [], mtu: () => NET.mtu });
    await r.service.attach({ containerId: 'kept', netns: '/run/netns/k', network: 'weft' });
    await r.service.attach({ containerId: 'gone', netns: '/run/netns/g', network: 'weft' });
    await r.service.attach({ containerId: 'other-net', netns: '/run/netns/o', network: 'other' });
    await r.pool.allocate(NET.subnet, key('orphan'));
    await r.pool.allocate(NET.subnet, key('valid-orphan'));
    // Docker's IPAM holds its addresses without records from RequestAddress to ReleaseAddress.
    r.service.runtimeManaged('docker-');
    await r.pool.allocate(NET.subnet, key('docker-42'));
    await cni.gc([key('kept'), key('valid-orphan')], 'weft', {} as never);
    expect(r.service.list().attachments.map((a) => a.containerId)).toEqual(['kept', 'other-net']);
    expect(r.service.reservations().map((x) => x.containerId).sort()).toEqual(['docker-42', 'kept', 'other-net', 'valid-orphan']);
    // The sweep, past the grace period, takes the record-less one GC spared, and keeps Docker's.
    await r.clock.advance(GRACE);
    expect((await r.sweeper.sweep()).released).toBe(1);
    expect(r.service.reservations().map((x) => x.containerId).sort()).toEqual(['docker-42', 'kept', 'other-net']);
    // A Docker attachment whose veth vanished loses its record, not its address (Docker's IPAM releases it).
    const d = await r.service.attach({ containerId: 'docker-43', netns: '/var/run/docker/netns/x' });
    r.kernel.gone.add('/var/run/docker/netns/x');
    expect((await r.sweeper.sweep()).detached).toBe(0);
    r.plumber.links.delete(d.hostIfName);
    expect((await r.sweeper.sweep()).detached).toBe(1);
    expect(r.service.list().attachments.map((a) => a.containerId)).not.toContain('docker-43');
    expect(r.service.reservations().map((x) => x.containerId)).toContain('docker-43');
  });

  it('weft ps marks an attachment stale, saying what is gone, until the sweep frees it', async () => {
    const r = await rig();
    await r.service.attach({ containerId: 'ok', netns: '/run/netns/ok' });
    await r.service.attach({ containerId: 'dead', netns: '/run/netns/dead' });
    r.kernel.gone.add('/run/netns/dead');
    r.plumber.links.delete(hostIfNameFor('dead', 'eth0'));
    const list = await listWithLiveness(r.service, r.kernel);
    expect(list.attachments.map((a) => [a.containerId, a.stale, a.gone])).toEqual([
      ['dead', true, ['netns', 'veth']],
      ['ok', false, undefined],
    ]);
    const table = psTable(list).split('\n');
    expect(table[0]).toMatch(/ STALE$/);
    expect(table[1]).toMatch(/netns gone,veth gone$/);
    expect(table[2]).toMatch(/ -$/);
    // A kernel that cannot be read leaves the list unmarked rather than failing `weft ps`.
    const weftVeths = r.kernel.weftVeths;
    r.kernel.weftVeths = async () => {
      throw new Error('netlink: ENOBUFS');
    };
    expect((await listWithLiveness(r.service, r.kernel)).attachments.map((a) => a.stale)).toEqual([false, false]);
    r.kernel.weftVeths = weftVeths;
    await r.sweeper.sweep();
    expect((await listWithLiveness(r.service, r.kernel)).attachments.map((a) => a.containerId)).toEqual(['ok']);
  });
});
