// One vxlan reconcile pass from empty in a fresh node process, for the
// programming benchmark's "cold" figure: the first pass after an agent
// starts, with nothing JIT-compiled yet. Module loading is not timed (it is
// in the agent-start benchmark); links are made first, untimed, as by hand.
// Prints {"ms", "ops"}. Usage: node programming-pass.js --netns PATH --iface IF --ip IP --count N

import { labBackendIn, benchLocalFor, remoteLeases } from './programming.bench.js';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const backend = await labBackendIn(arg('netns'), arg('iface'), arg('ip'));
const local = benchLocalFor(arg('ip'));
const remotes = remoteLeases(Number(arg('count')));
await backend.reconcile(local, []);
const t = performance.now();
const report = await backend.reconcile(local, remotes);
const ms = performance.now() - t;
await backend.close();
console.log(JSON.stringify({ ms, ops: report.ops, failed: report.failed.length }));
