// The sweep's decisions over plain data: what is dead, what is orphaned, and
// what an attach in flight is still building (never freed).

import { describe, expect, it } from 'vitest';
import { type SweepInput, type SweptRecord, type SweptReservation, goneParts, isOrphanAge, planSweep } from '../../agent/attachments/sweep-plan.js';
import { hostIfNameFor, isHostIfName } from '../../encap/plumb.js';

const START = Date.parse('2026-01-01T10:00:00Z');
const GRACE = 60_000;
const iso = (ms: number): string => new Date(ms).toISOString();

function rec(id: string, netns = `/run/netns/${id}`): SweptRecord {
  return { containerId: id, ifname: 'eth0', netns, hostIfName: hostIfNameFor(id, 'eth0'), createdAt: iso(START + 1000) };
}
function res(id: string, at: number, ip = '10.42.7.9'): SweptReservation {
  return { containerId: id, ifname: 'eth0', ip, reservedAt: iso(at) };
}
function input(o: Partial<SweepInput>): SweepInput {
  return { records: [], reservations: [], busy: [], veths: new Set(), goneNetns: new Set(), now: START + 10_000, startedAt: START, graceMs: GRACE, ...o };
}

describe('planSweep', () => {
  it('leaves a live attachment alone: namespace there, veth there, reservation recorded', () => {
    const a = rec('a');
    expect(planSweep(input({ records: [a], reservations: [res('a', START - 5000)], veths: new Set([a.hostIfName]) }))).toEqual([]);
  });

  it('detaches an attachment whose namespace is gone, or whose host veth is gone, saying why', () => {
    const a = rec('a', '/proc/4242/ns/net');
    const b = rec('b');
    const plan = planSweep(input({ records: [a, b], veths: new Set([a.hostIfName]), goneNetns: new Set(['/proc/4242/ns/net']) }));
    expect(plan).toEqual([
      { kind: 'detach', key: { containerId: 'a', ifname: 'eth0' }, createdAt: a.createdAt, reasons: ['network namespace /proc/4242/ns/net is gone'] },
      { kind: 'detach', key: { containerId: 'b', ifname: 'eth0' }, createdAt: b.createdAt, reasons: [`host veth ${b.hostIfName} is gone`] },
    ]);
  });

  it('never touches a key with an operation in flight: its record, its reservation, its veth', () => {
    const a = rec('a');
    const busy = [{ containerId: 'a', ifname: 'eth0' }, { containerId: 'new', ifname: 'eth0' }];
    const plan = planSweep(
      input({ records: [a], reservations: [res('new', START - 1)], busy, veths: new Set([hostIfNameFor('new', 'eth0')]), goneNetns: new Set([a.netns]) }),
    );
    expect(plan).toEqual([]);
  });

  it('releases a reservation without a record once it cannot be in flight', () => {
    const plan = planSweep(
      input({
        reservations: [
          res('before-start', START - 1, '10.42.7.2'),
          res('young', START + 9000, '10.42.7.3'),
          res('old', START + 10_000 - GRACE, '10.42.7.4'),
          { containerId: 'garbled', ifname: 'eth0', ip: '10.42.7.5', reservedAt: 'yesterday' },
        ],
        now: START + 10_000,
      }),
    );
    expect(plan.filter((a) => a.kind === 'release').map((a) => a.kind === 'release' && a.ip)).toEqual(['10.42.7.2', '10.42.7.4', '10.42.7.5']);
    expect(plan.find((a) => a.kind === 'release' && a.ip === '10.42.7.2')).toMatchObject({ reservedAt: iso(START - 1), key: { containerId: 'before-start', ifname: 'eth0' } });
    // The young reservation's veth (the attach in progress made it) is spared with it.
    expect(planSweep(input({ reservations: [res('young', START + 9000)], veths: new Set([hostIfNameFor('young', 'eth0')]) }))).toEqual([]);
  });

  it('runtime-managed keys (Docker): a reservation without a record is kept; only a vanished veth frees the attachment', () => {
    const plan = planSweep(input({ reservations: [res('docker-0123abcd', START - 1, '10.42.7.2'), res('cut-short', START - 1, '10.42.7.3')], runtimeManaged: ['docker-'] }));
    expect(plan.map((a) => a.kind === 'release' && a.ip)).toEqual(['10.42.7.3']);
    // dockerd's sandbox path is invisible to the agent: not a reason; a gone veth is.
    const seen = rec('docker-aa', '/var/run/docker/netns/abc');
    const dead = rec('docker-bb', '/var/run/docker/netns/def');
    const view = { veths: new Set([seen.hostIfName]), goneNetns: new Set([seen.netns, dead.netns]) };
    expect(planSweep(input({ records: [seen, dead], ...view, runtimeManaged: ['docker-'] })).map((a) => a.kind === 'detach' && a.reasons)).toEqual([
      [`host veth ${dead.hostIfName} is gone`],
    ]);
    expect(goneParts(seen, view, ['docker-'])).toEqual([]);
  });

  it('deletes a weft veth that no record, reservation or operation in flight owns', () => {
    const a = rec('a');
    const stray = hostIfNameFor('crashed', 'eth0');
    const orphan = hostIfNameFor('orphan', 'eth0');
    const plan = planSweep(input({ records: [a], reservations: [res('orphan', START - 1)], veths: new Set([a.hostIfName, stray, orphan]) }));
    // The orphan's veth goes with its release (a detach deletes the key's veth); only the stray is deleted by name.
    expect(plan.filter((x) => x.kind === 'delete-veth')).toEqual([{ kind: 'delete-veth', name: stray, reason: `veth ${stray} belongs to no attachment record or reservation` }]);
    expect(plan.filter((x) => x.kind === 'release')).toHaveLength(1);
  });

  it('a record owns its veth by its recorded name, even one not derived from its key', () => {
    const a = { ...rec('a'), hostIfName: 'vw0123456789ab' };
    expect(planSweep(input({ records: [a], veths: new Set(['vw0123456789ab']) }))).toEqual([]);
  });
});

describe('sweep helpers', () => {
  it('goneParts names what is gone', () => {
    const a = rec('a');
    expect(goneParts(a, { veths: new Set([a.hostIfName]), goneNetns: new Set() })).toEqual([]);
    expect(goneParts(a, { veths: new Set(), goneNetns: new Set([a.netns]) })).toEqual(['netns', 'veth']);
  });

  it('isOrphanAge: made before this process started, or older than the grace period', () => {
    expect(isOrphanAge(iso(START - 1), START + 1, START, GRACE)).toBe(true);
    expect(isOrphanAge(iso(START + 1), START + GRACE, START, GRACE)).toBe(false);
    expect(isOrphanAge(iso(START + 1), START + 1 + GRACE, START, GRACE)).toBe(true);
    expect(isOrphanAge('not a time', START, START, GRACE)).toBe(true);
  });

  it('isHostIfName matches only the names hostIfNameFor makes', () => {
    expect(isHostIfName(hostIfNameFor('x', 'eth0'))).toBe(true);
    for (const n of ['eth0', 'weft0', 'vw0123', 'vw0123456789abc', 'vw0123456789AB', 'veth1234', 'vx0123456789ab']) expect(isHostIfName(n)).toBe(false);
  });
});
