// One simulation run in its own process (a 5000-member cluster with full views
// holds 25 million member records: it needs a larger heap than the runner's).
// Prints the figures as one JSON line. Usage: node gossip-sim-run.js N SEED

import { simulate } from './gossip-sim.js';

const n = Number(process.argv[2]);
const seed = Number(process.argv[3] ?? 1);
if (!Number.isInteger(n) || n < 2) throw new Error('usage: gossip-sim-run.js N [SEED]');
console.log(JSON.stringify(await simulate(n, seed)));
