// The udp forwarder's busy-poll policy (native/src/busy_poll.h), replayed on
// a virtual clock by a small C driver compiled here: that the host waiting
// for answers polls and catches them, that the answering host and one-way
// streams learn not to poll, and that polling never takes more than its
// budget of a CPU whatever the traffic.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const SEND = 0;
const RECEIVE = 1;
const MAX_NS = 300_000;
const BUDGET_NS = 100_000_000;

let dir = '';
let sim = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-busy-poll-'));
  sim = join(dir, 'sim');
  await run('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-I', 'native/src', '-o', sim, 'test/unit/support/busy-poll-sim.c']);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Period {
  hit: boolean;
  polledNs: number;
}
async function replay(periods: Array<[kind: number, idleNs: number]>): Promise<Period[]> {
  const child = execFile(sim, { maxBuffer: 64 << 20 });
  const out = new Promise<string>((resolve, reject) => {
    let s = '';
    child.stdout!.on('data', (d: Buffer) => (s += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`busy-poll-sim exited ${code}`))));
  });
  child.stdin!.end(periods.map(([k, n]) => `${k} ${n}\n`).join(''));
  return (await out)
    .trim()
    .split('\n')
    .map((l) => {
      const [hit, polled] = l.split(' ').map(Number);
      return { hit: hit === 1, polledNs: polled! };
    });
}
const sum = (ps: Period[]) => ps.reduce((a, p) => a + p.polledNs, 0);

describe('busy-poll policy', () => {
  it('the requesting host polls after sending and catches the answer, but not after delivering it', async () => {
    // ping every 10 ms: after each request the answer comes 150 us later; after each answer the next request 10 ms later.
    const ps = await replay(Array.from({ length: 200 }, (_, i) => (i % 2 ? [RECEIVE, 10_000_000] : [SEND, 150_000])));
    const afterSend = ps.filter((_, i) => i % 2 === 0);
    const afterReceive = ps.filter((_, i) => i % 2 === 1);
    expect(afterSend[0]!.hit).toBe(false); // nothing learned yet
    expect(afterSend.slice(1).every((p) => p.hit)).toBe(true);
    expect(afterReceive.some((p) => p.hit)).toBe(false);
    expect(sum(afterReceive)).toBe(0);
  });

  it('the answering host, whose next packet is the next request, never polls', async () => {
    const ps = await replay(Array.from({ length: 100 }, () => [SEND, 10_000_000]));
    expect(sum(ps)).toBe(0);
  });

  it('learns to stop: after short gaps turn long, polling ends within a few periods', async () => {
    const ps = await replay([...Array.from({ length: 20 }, (): [number, number] => [SEND, 100_000]), ...Array.from({ length: 50 }, (): [number, number] => [SEND, 5_000_000])]);
    const long = ps.slice(20);
    const polling = long.findIndex((p) => p.polledNs === 0);
    expect(polling).toBeGreaterThan(0); // the window learned from the short gaps was used at first
    expect(polling).toBeLessThanOrEqual(6);
    expect(long.slice(polling).every((p) => p.polledNs === 0)).toBe(true);
    expect(Math.max(...long.map((p) => p.polledNs))).toBeLessThanOrEqual(MAX_NS);
  });

  it('never polls longer than the window, and gaps longer than it are slept', async () => {
    const ps = await replay(Array.from({ length: 50 }, (_, i): [number, number] => [SEND, i % 2 ? 100_000 : 400_000]));
    expect(ps.every((p) => p.polledNs <= MAX_NS)).toBe(true);
    expect(ps.filter((_, i) => i % 2 === 0).some((p) => p.hit)).toBe(false);
  });

  it('takes at most its budget of each second, however the gaps fall', async () => {
    // 250 us gaps, each caught by polling: unbounded, this would poll nearly all the time.
    const ps = await replay(Array.from({ length: 12_000 }, (): [number, number] => [SEND, 250_000]));
    let t = 0;
    let windowStart = 0;
    let inWindow = 0;
    let worst = 0;
    for (const p of ps) {
      if (t - windowStart >= 1_000_000_000) {
        windowStart = t;
        inWindow = 0;
      }
      inWindow += p.polledNs;
      worst = Math.max(worst, inWindow);
      t += 250_000 + 5_000;
    }
    expect(ps.filter((p) => p.hit).length).toBeGreaterThan(100); // it does poll…
    expect(worst).toBeLessThanOrEqual(BUDGET_NS + MAX_NS); // …within the budget (one period may straddle the boundary)
  });
});
