// Logging hostile or broken input at a limited rate: a flood of bad datagrams
// must not become a flood of log lines. One line per reason per window, with
// how many were suppressed since the last one; the counters keep the exact totals.

import type { Logger } from 'pino';

export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly log: Logger, private readonly windowMs = 10_000, private readonly now: () => number = Date.now) {}

  warn(reason: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const e = this.last.get(reason);
    if (e !== undefined && t - e.at < this.windowMs) {
      e.suppressed++;
      return;
    }
    this.log.warn({ ...fields, reason, suppressedSinceLast: e?.suppressed ?? 0 }, msg);
    this.last.set(reason, { at: t, suppressed: 0 });
  }
}
