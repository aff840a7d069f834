// A DNS zone over a plain name -> addresses table, for tests that drive the
// answer logic or the server without a record store: lookups, "between" names
// (a prefix of a longer name), reverse lookups and a per-name rotation turn,
// as RecordStore provides them. Names are relative to weft.local; the overlay
// is 10.42.0.0/16.

import type { Zone } from '../../agent/dns/dns-answer.js';

export function fakeZone(names: Record<string, string[]>): Zone {
  const turn = new Map<string, number>();
  return {
    domain: 'weft.local',
    ttl: 5,
    lookup: (n) => names[n],
    isBetween: (n) => Object.keys(names).some((k) => k.endsWith(`.${n}`)),
    reverse: (a) => {
      const hits = Object.entries(names).filter(([, as]) => as.includes(a)).map(([n]) => n);
      return hits.length ? hits : undefined;
    },
    inOverlay: (a) => a.startsWith('10.42.'),
    rotation: (n) => {
      const k = turn.get(n) ?? 0;
      turn.set(n, k + 1);
      return k;
    },
  };
}
