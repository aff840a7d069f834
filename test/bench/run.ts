// Runs the benchmarks under test/bench/ (compiled to dist/test/bench/) one
// after another and prints each one's lines and a summary. Benchmarks are
// never part of the test suite: timing belongs here, as same-run ratios.
// Usage: node dist/test/bench/run.js [name-filter]

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchResult } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? '';
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js') && f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches "${filter}" in ${here}`);
  process.exit(2);
}
const results: BenchResult[] = [];
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f.replace(/\.bench\.js$/, '')}`);
  try {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: Bench };
    const r = await mod.default();
    for (const line of r.lines) console.log(line);
    results.push(r);
  } catch (e) {
    failed++;
    console.error(`benchmark ${f} failed: ${(e as Error).stack ?? String(e)}`);
  }
}
console.log('\n=== summary');
for (const r of results) {
  console.log(`${r.name}: ${Object.entries(r.figures).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`).join(' ')}`);
}
process.exit(failed > 0 ? 1 : 0);
