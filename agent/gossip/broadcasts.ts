// The queue of messages waiting to be piggybacked (memberlist's
// TransmitLimitedQueue). Each message is sent a limited number of times
// (λ·log N), least-sent first, so a new message spreads before old ones are
// repeated. A newer message about the same member replaces the older one
// (its key is the member id), so stale alive/suspect news is never re-sent.

import { msgSize } from './codec.js';
import type { Msg } from './messages.js';

interface Item { key: string; msg: Msg; size: number; transmits: number; order: number }

export class BroadcastQueue {
  private items = new Map<string, Item>();
  private order = 0;

  get size(): number { return this.items.size; }

  /** Queue `msg`, replacing any queued message with the same key. */
  push(key: string, msg: Msg): void {
    this.items.set(key, { key, msg, size: msgSize(msg), transmits: 0, order: this.order++ });
  }

  /** Up to `budget` bytes of messages, each counted as sent once; dropped after `limit` sends. */
  take(budget: number, limit: number): Msg[] {
    if (this.items.size === 0 || budget <= 0) return [];
    const sorted = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    const out: Msg[] = [];
    let left = budget;
    for (const it of sorted) {
      if (it.size > left) continue;
      left -= it.size;
      out.push(it.msg);
      if (++it.transmits >= limit) this.items.delete(it.key);
      if (out.length >= 254 || left < 8) break;
    }
    return out;
  }

  clear(): void { this.items.clear(); }
}
