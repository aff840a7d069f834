// A cache of finished replies for cluster names, so the common query (the
// same name asked again) costs a map lookup and a copy instead of a decode
// and an encode: that is what lets a single-threaded server keep up with
// dnsmasq. The key is the query's bytes after the ID (flags, counts, the
// question exactly as asked, the EDNS record), so a different case, RD bit or
// payload size is a different entry, and the reply echoes the question as it
// came. Round robin survives caching: an entry holds the cycle of rotated
// replies (one per address), served in turn. Any change of the record set
// (a new generation) empties the cache; it is also bounded in size.

import type { Decision } from './dns-answer.js';

const MAX_ENTRIES = 20_000;
/** Names with more addresses than this are answered uncached (their rotation is longer than the cycle kept). */
const MAX_CYCLE = 32;

interface Entry {
  readonly replies: Buffer[];
  readonly rcode: string;
  turn: number;
}

export class AnswerCache {
  private entries = new Map<string, Entry>();
  private generation = -1;

  constructor(private readonly currentGeneration: () => number) {}

  private fresh(): void {
    const g = this.currentGeneration();
    if (g !== this.generation || this.entries.size >= MAX_ENTRIES) {
      this.entries = new Map();
      this.generation = g;
    }
  }

  /** A cached reply (with the query's ID written in) and its rcode, or undefined. */
  get(query: Buffer): { bytes: Buffer; rcode: string } | undefined {
    if (query.length < 12) return undefined;
    this.fresh();
    const e = this.entries.get(query.toString('latin1', 2));
    if (e === undefined) return undefined;
    const reply = Buffer.from(e.replies[e.turn]!);
    e.turn = (e.turn + 1) % e.replies.length;
    reply[0] = query[0]!;
    reply[1] = query[1]!;
    return { bytes: reply, rcode: e.rcode };
  }

  /**
   * Decides the query through `decide` and, for authoritative replies, keeps the
   * rotation cycle: `decide` is called again (each call rotates) until the
   * first reply comes back. `kept` hears of every cycle kept (the native
   * fast path keeps a copy).
   */
  decideAndKeep(query: Buffer, decide: () => Decision, cacheable: (d: Decision) => boolean, kept?: (replies: readonly Buffer[], turn: number, rcode: string) => void): Decision {
    const first = decide();
    if (first.kind !== 'reply' || !cacheable(first)) return first;
    this.fresh();
    const replies = [first.bytes];
    for (let i = 0; i < MAX_CYCLE; i++) {
      const next = decide();
      if (next.kind !== 'reply') return first;
      if (next.bytes.equals(first.bytes)) {
        // The next query gets the reply after `first`.
        const turn = replies.length > 1 ? 1 : 0;
        this.entries.set(query.toString('latin1', 2), { replies, rcode: first.rcode, turn });
        kept?.(replies, turn, first.rcode);
        return first;
      }
      replies.push(next.bytes);
    }
    return first;
  }
}
