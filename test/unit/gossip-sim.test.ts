// The simulation: the agent's SWIM state machine in an in-process cluster on
// a lossy network (5 % of datagrams lost) in virtual time. Deterministic (one
// seed), so the assertions are about the protocol, not about this machine's
// speed: everybody learns a broadcast record, everybody agrees on a death,
// nobody alive is declared dead, and dissemination grows like log N.
// The full figures (100/1000/5000 members, full views, both phases) are in
// test/bench/gossip.bench.ts; this keeps to what runs in seconds.
import { describe, expect, it } from 'vitest';
import { simulate } from '../bench/gossip-sim.js';

describe('gossip simulation, 5 % loss, memberlist timings', () => {
  it('100 members: all learn a new record; all agree a killed member is dead; no false deaths', async () => {
    const f = await simulate(100, 1);
    expect(f.lossRate).toBeGreaterThan(0.04);
    expect(f.disseminateAllMs).toBeLessThan(5000);
    expect(f.deathAgreedMs).toBeLessThan(60_000);
    expect(f.falselyDead).toBe(0);
  }, 60_000);

  it('1000 members (full views) and 5000 members (views of 100): everyone learns the record, in log N periods', async () => {
    const small = await simulate(100, 2, { death: false });
    const mid = await simulate(1000, 2, { death: false });
    const big = await simulate(5000, 2, { death: false, view: 100 });
    for (const f of [mid, big]) {
      expect(Number.isFinite(f.disseminateAllMs)).toBe(true);
      expect(f.falselyDead).toBe(0);
    }
    // log N growth: 50× the members costs far less than 50× the time (a few more gossip rounds).
    expect(big.disseminateAllMs).toBeLessThan(3 * small.disseminateAllMs);
    expect(mid.disseminateAllMs).toBeLessThan(4000);
  }, 120_000);
});
