// The masquerade table is reconciled, not replayed: loaded when missing or
// different from what --ip-masq wants, removed when disabled, untouched when
// right. The listing compared is the exact text `nft list table` printed here.
import { describe, expect, it } from 'vitest';
import { masqueradeMatches, reconcileMasquerade } from '../../encap/masquerade.js';
import { parseCidr } from '../../ipam/cidr.js';

const NET = parseCidr('10.42.0.0/16');
const LISTED = [
  'table ip weft_masq {',
  '\tchain postrouting {',
  '\t\ttype nat hook postrouting priority srcnat; policy accept;',
  '\t\tip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return',
  '\t\tip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
  '\t}',
  '}',
  '',
].join('\n');

describe('masqueradeMatches', () => {
  it('accepts the table as nft lists it', () => {
    expect(masqueradeMatches(LISTED, NET)).toBe(true);
  });
  it('refuses a table for another network, with a rule missing, or with one added', () => {
    expect(masqueradeMatches(LISTED, parseCidr('10.43.0.0/16'))).toBe(false);
    expect(masqueradeMatches(LISTED.replace(/.*return\n/, ''), NET)).toBe(false);
    expect(masqueradeMatches(LISTED.replace('\t}', '\t\tcounter accept\n\t}'), NET)).toBe(false);
    expect(masqueradeMatches('table ip weft_masq {\n}\n', NET)).toBe(false);
  });
});

describe('reconcileMasquerade', () => {
  function fake(listed: string | undefined) {
    const scripts: string[] = [];
    return { scripts, run: async (s: string) => void scripts.push(s), list: async () => listed };
  }
  it('loads the table when it is missing or differs, and leaves a right one alone', async () => {
    for (const listed of [undefined, 'table ip weft_masq {\n}\n']) {
      const f = fake(listed);
      expect(await reconcileMasquerade({ enabled: true, network: NET, ...f })).toBe('applied');
      expect(f.scripts[0]).toContain('masquerade fully-random');
    }
    const f = fake(LISTED);
    expect(await reconcileMasquerade({ enabled: true, network: NET, ...f })).toBe('unchanged');
    expect(f.scripts).toEqual([]);
  });
  it('removes the table when disabled, and does nothing when there is none', async () => {
    let f = fake(LISTED);
    expect(await reconcileMasquerade({ enabled: false, network: NET, ...f })).toBe('removed');
    expect(f.scripts[0]).toContain('delete table ip weft_masq');
    f = fake(undefined);
    expect(await reconcileMasquerade({ enabled: false, network: NET, ...f })).toBe('unchanged');
    expect(f.scripts).toEqual([]);
  });
});
