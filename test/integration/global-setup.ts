// vitest globalSetup for the integration project: removes namespaces, processes
// and temp dirs that crashed earlier runs left behind, before any test file
// starts and again after all have finished (a worker killed mid-run cannot
// clean up after itself; by then its PID is dead and its leftovers are fair game).
import { cleanupLeftovers } from '../lab/index.js';

async function sweep(when: string): Promise<void> {
  // Without root nothing could have been created, and nothing can be removed;
  // the tests themselves fail with a clear "needs root" message.
  if (process.getuid?.() !== 0) return;
  const { namespaces, dirs } = await cleanupLeftovers();
  if (namespaces.length || dirs.length) {
    console.warn(`weft lab: removed leftovers ${when}: ${[...namespaces, ...dirs].join(', ')}`);
  }
}

export default async function setup(): Promise<() => Promise<void>> {
  await sweep('before the run');
  return () => sweep('after the run');
}
