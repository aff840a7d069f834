// Record versions: a hybrid logical clock. A version is wall-clock
// milliseconds × 1000 plus a counter, so versions written after an agent
// restart are higher than those written before it (the wall clock moved on)
// without any state on disk, and `observe` of every version seen from peers
// keeps them higher even when this host's clock lags behind another's.
// Plain numbers (< 2^53 until the year 2255) keep the wire format simple.

export const TICKS_PER_MS = 1000;

/** How far ahead of our wall clock a peer's version may be before we refuse it (a broken or hostile clock). */
export const MAX_FUTURE_MS = 24 * 3600 * 1000;

export class HybridClock {
  private last = 0;

  constructor(private readonly wallMs: () => number = Date.now) {}

  /** A version higher than every version issued or observed so far. */
  next(): number {
    const physical = Math.floor(this.wallMs()) * TICKS_PER_MS;
    this.last = Math.max(this.last + 1, physical);
    return this.last;
  }

  /** Takes a peer's version into account; false (and ignored) when it is implausibly far in the future. */
  observe(version: number): boolean {
    if (!plausibleVersion(version, this.wallMs())) return false;
    if (version > this.last) this.last = version;
    return true;
  }
}

/** The wall-clock time a version was written at. */
export function versionMs(version: number): number {
  return Math.floor(version / TICKS_PER_MS);
}

export function plausibleVersion(version: number, nowMs: number): boolean {
  return Number.isSafeInteger(version) && version > 0 && versionMs(version) <= nowMs + MAX_FUTURE_MS;
}
