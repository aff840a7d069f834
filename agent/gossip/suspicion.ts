// How long a suspected member has to refute before it is declared dead
// (memberlist's Lifeguard rule, pure). The timeout starts at `max` and shrinks
// towards `min` (logarithmically) as other members independently confirm the
// suspicion, so a member that only we cannot reach gets long to refute, and a
// member that everybody misses is declared dead quickly.

/** memberlist's suspicionTimeout: mult · max(1, log10(n)) · probe interval. */
export function suspicionMinMs(mult: number, n: number, probeIntervalMs: number): number {
  return mult * Math.max(1, Math.log10(Math.max(1, n))) * probeIntervalMs;
}

/** Confirmations that bring the timeout down to `min`: mult − 2, none in a tiny cluster. */
export function confirmationsWanted(mult: number, n: number): number {
  const k = mult - 2;
  return n - 2 < k ? 0 : k;
}

export function suspicionTimeoutMs(confirmations: number, wanted: number, minMs: number, maxMs: number): number {
  if (wanted < 1) return minMs;
  const frac = Math.log(confirmations + 1) / Math.log(wanted + 1);
  return Math.max(minMs, Math.floor(maxMs - frac * (maxMs - minMs)));
}

/** memberlist's retransmitLimit: mult · ceil(log10(n + 1)). */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.ceil(Math.log10(n + 1));
}
