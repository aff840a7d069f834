// Gossip convergence from the simulation (the agent's own SWIM state machine,
// in-process, 5 % datagram loss, virtual time) at memberlist's default timings
// (probe 1 s, probe timeout 500 ms, gossip 200 ms to 3 members, retransmit
// mult 4, suspicion mult 4): virtual time until 99.99 % / all members know a
// new record and until all agree a killed member is dead, at 100, 1000 and
// 5000 members with full views. The baselines are the goals: the Serf
// convergence model's 2.2 s for 99.99 % of 1000 members, and 10 s for a
// death at 100 members; the ratio is ours / the goal (≤ 1 meets it). Per-N
// figures are also divided by log2 N, which stays flat when growth is log N.

import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { SimFigures } from './gossip-sim.js';
import type { BenchResult } from './types.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const SIZES = [100, 1000, 5000];
const SERF_1000_MS = 2200;
const DEATH_100_MS = 10_000;

async function simulateIn(n: number): Promise<SimFigures> {
  const { stdout } = await run(process.execPath, ['--max-old-space-size=12000', join(here, 'gossip-sim-run.js'), String(n), '1'], { timeout: 900_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as SimFigures;
}

export default async function gossipBench(): Promise<BenchResult> {
  const lines: string[] = [];
  const figures: Record<string, number> = {};
  for (const n of SIZES) {
    const f = await simulateIn(n);
    const log2 = Math.log2(n);
    lines.push(
      `${n} members: 99.99 % know a record after ${f.disseminate9999Ms} ms (${(f.disseminate9999Ms / 200).toFixed(1)} gossip periods, ${(f.disseminate9999Ms / 200 / log2).toFixed(2)} per log2 N), all after ${f.disseminateAllMs} ms; ` +
        `a killed member agreed dead after ${f.deathAgreedMs} ms (${(f.deathAgreedMs / 1000).toFixed(1)} probe periods); false deaths ${f.falselyDead}; loss ${(100 * f.lossRate).toFixed(1)} %; ${f.packetsPerMemberSecond.toFixed(1)} datagrams/member/s`,
    );
    figures[`n${n}_9999ms`] = f.disseminate9999Ms;
    figures[`n${n}_allMs`] = f.disseminateAllMs;
    figures[`n${n}_deadMs`] = f.deathAgreedMs;
    figures[`n${n}_gossipPeriodsPerLog2N`] = f.disseminate9999Ms / 200 / log2;
  }
  const r1000 = figures['n1000_9999ms']! / SERF_1000_MS;
  const r100 = figures['n100_deadMs']! / DEATH_100_MS;
  lines.push(`goal 1000 members, 99.99 % within ${SERF_1000_MS} ms (Serf convergence model): ratio ours/goal ${r1000.toFixed(2)}`);
  lines.push(`goal 100 members, death agreed within ${DEATH_100_MS} ms: ratio ours/goal ${r100.toFixed(2)}`);
  figures['ratio1000Dissemination'] = r1000;
  figures['ratio100Death'] = r100;
  return { name: 'gossip', lines, figures };
}
