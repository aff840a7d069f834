// The sealing epoch: the first 4 bytes of every nonce this process uses.
// Each key is one direction between two hosts and the counter restarts at 0
// with every process, so nonces stay unique under a key across restarts only
// if every start uses a new epoch. It is max(the one persisted + 1, unix
// seconds): growing even when the state dir is lost (the clock still moves
// on), and growing even when the clock jumps back (the file remembers). The
// file is written (fsynced) before the epoch is used. Receivers drop older
// epochs, which is also what stops replays of a previous run's datagrams.

import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from '../../ipam/atomic-file.js';

export const EPOCH_FILE = 'udp-seal-epoch';

/** Pure: the next epoch after `previous` (undefined: none recorded) at `nowSeconds`. */
export function nextEpoch(previous: number | undefined, nowSeconds: number): number {
  const next = Math.max((previous ?? 0) + 1, Math.floor(nowSeconds));
  if (next > 0xffffffff) throw new RangeError('udp seal epoch exhausted (u32); rotate the keys and remove the epoch file');
  return next;
}

export function parseEpoch(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : undefined;
}

/** Reads, advances and durably records the epoch in stateDir; returns the one to use now. */
export async function takeEpoch(stateDir: string, nowSeconds = Date.now() / 1000): Promise<number> {
  const path = join(stateDir, EPOCH_FILE);
  const epoch = nextEpoch(parseEpoch(await readFileIfExists(path)), nowSeconds);
  await writeFileAtomic(path, `${epoch}\n`, 0o600);
  return epoch;
}
