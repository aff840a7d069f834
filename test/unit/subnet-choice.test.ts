// Unit tests for ipam/subnet-choice: the acquisition order (existing, previous,
// random, exhausted) with in-memory leases and a seeded random, plus
// property-style checks that a taken or excluded subnet is never chosen and
// that the random pick is exactly "the k-th free subnet".
import { describe, expect, it } from 'vitest';
import { cidrsOverlap, enumerateSubnets, formatCidr, parseCidr, subnetAt } from '../../ipam/cidr.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import { chooseSubnet, indexTaken, staleOwnLeases, type SubnetChoice } from '../../ipam/subnet-choice.js';
import type { Cidr, Lease, NetworkConfig } from '../../ipam/types.js';
import { seededRandom as seeded } from '../lab/seeded-random.js';

const ME = '192.0.2.1';


function lease(subnet: string | Cidr, publicIP: string, modRevision = 1): Lease {
  return {
    subnet: typeof subnet === 'string' ? parseCidr(subnet) : subnet,
    attrs: { publicIP, backendType: 'vxlan', backendData: {} },
    leaseId: '1',
    modRevision,
  };
}

function subnetOf(choice: SubnetChoice): string | undefined {
  if (choice.kind === 'existing') return formatCidr(choice.lease.subnet);
  if (choice.kind === 'exhausted') return undefined;
  return formatCidr(choice.subnet);
}

const net16 = parseNetworkConfig({ Network: '10.42.0.0/16' });
const tiny = parseNetworkConfig({ Network: '10.42.0.0/28' }); // three /30s: .4, .8, .12

describe('order of preference', () => {
  it('an own lease that still fits wins over previous', () => {
    const choice = chooseSubnet({
      config: net16,
      leases: [lease('10.42.3.0/24', '192.0.2.9'), lease('10.42.5.0/24', ME)],
      publicIP: ME,
      previous: parseCidr('10.42.9.0/24'),
      random: seeded(1),
    });
    expect(choice.kind).toBe('existing');
    expect(subnetOf(choice)).toBe('10.42.5.0/24');
  });

  it('among several own leases, the previous one, else the lowest', () => {
    const leases = [lease('10.42.8.0/24', ME), lease('10.42.5.0/24', ME), lease('10.42.6.0/24', ME)];
    expect(subnetOf(chooseSubnet({ config: net16, leases, publicIP: ME, previous: parseCidr('10.42.6.0/24'), random: seeded(1) }))).toBe('10.42.6.0/24');
    expect(subnetOf(chooseSubnet({ config: net16, leases, publicIP: ME, random: seeded(1) }))).toBe('10.42.5.0/24');
  });

  it('an own lease that no longer fits the config is not reused, and is reported stale', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/16', SubnetLen: 25 });
    const leases = [lease('10.42.5.0/24', ME), lease('10.43.0.0/25', ME), lease('10.42.0.0/25', ME), lease('10.42.9.0/25', '192.0.2.9')];
    const choice = chooseSubnet({ config: cfg, leases, publicIP: ME, random: seeded(3) });
    expect(choice.kind).toBe('random');
    expect(staleOwnLeases(cfg, leases, ME).map((l) => formatCidr(l.subnet))).toEqual(['10.42.5.0/24', '10.43.0.0/25', '10.42.0.0/25']);
  });

  it('previous is reused when free', () => {
    const choice = chooseSubnet({
      config: net16,
      leases: [lease('10.42.3.0/24', '192.0.2.9')],
      publicIP: ME,
      previous: parseCidr('10.42.7.0/24'),
      random: seeded(1),
    });
    expect(choice).toEqual({ kind: 'previous', subnet: parseCidr('10.42.7.0/24') });
  });

  it('previous taken by another host (exactly or by overlap) falls back to random', () => {
    for (const other of ['10.42.7.0/24', '10.42.0.0/20', '10.42.7.128/25']) {
      const choice = chooseSubnet({
        config: net16,
        leases: [lease(other, '192.0.2.9')],
        publicIP: ME,
        previous: parseCidr('10.42.7.0/24'),
        random: seeded(1),
      });
      expect(choice.kind).toBe('random');
      expect(cidrsOverlap(parseCidr(subnetOf(choice)!), parseCidr(other))).toBe(false);
    }
  });

  it('previous outside the config (network, range, length) falls back to random', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/16', SubnetMin: '10.42.10.0', SubnetMax: '10.42.20.0' });
    for (const prev of ['10.43.7.0/24', '10.42.9.0/24', '10.42.21.0/24', '10.42.12.0/25', '10.42.0.0/24']) {
      const choice = chooseSubnet({ config: cfg, leases: [], publicIP: ME, previous: parseCidr(prev), random: seeded(2) });
      expect(choice.kind).toBe('random');
    }
  });

  it('exclude is honoured for existing, previous and random', () => {
    const exclude = [parseCidr('10.42.0.4/30'), parseCidr('10.42.0.8/30')];
    const choice = chooseSubnet({
      config: tiny,
      leases: [lease('10.42.0.4/30', ME)],
      publicIP: ME,
      previous: parseCidr('10.42.0.8/30'),
      exclude,
      random: seeded(1),
    });
    expect(choice).toEqual({ kind: 'random', subnet: parseCidr('10.42.0.12/30') });
  });

  it('exhausted when every subnet is taken or excluded', () => {
    const leases = [lease('10.42.0.4/30', '192.0.2.7'), lease('10.42.0.8/30', '192.0.2.8')];
    expect(chooseSubnet({ config: tiny, leases, publicIP: ME, random: seeded(1) }).kind).toBe('random');
    expect(chooseSubnet({ config: tiny, leases, publicIP: ME, exclude: [parseCidr('10.42.0.12/30')], random: seeded(1) })).toEqual({ kind: 'exhausted', subnets: 3, taken: 3 });
    // One lease of a shorter, older SubnetLen can fill the whole range.
    expect(chooseSubnet({ config: tiny, leases: [lease('10.42.0.0/28', '192.0.2.7')], publicIP: ME, random: seeded(1) })).toEqual({ kind: 'exhausted', subnets: 3, taken: 3 });
  });

  it('a random() of exactly 1 or NaN still yields a free subnet', () => {
    expect(subnetOf(chooseSubnet({ config: tiny, leases: [], publicIP: ME, random: () => 1 }))).toBe('10.42.0.12/30');
    expect(subnetOf(chooseSubnet({ config: tiny, leases: [], publicIP: ME, random: () => Number.NaN }))).toBe('10.42.0.4/30');
  });

  it('leases outside the range (first subnet, other networks) do not shrink it', () => {
    const leases = [lease('10.42.0.0/30', '192.0.2.7'), lease('10.99.0.0/16', '192.0.2.8'), lease('10.42.0.8/30', '192.0.2.9')];
    const seen = new Set<string>();
    const random = seeded(11);
    for (let i = 0; i < 200; i++) seen.add(subnetOf(chooseSubnet({ config: tiny, leases, publicIP: ME, random }))!);
    expect([...seen].sort()).toEqual(['10.42.0.12/30', '10.42.0.4/30']);
  });
});

/** Reference: the free subnet indexes, by brute force. */
function freeIndexes(cfg: NetworkConfig, blocked: readonly Cidr[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < enumerateSubnets(cfg); i++) {
    const s = subnetAt(cfg, i);
    if (!blocked.some((b) => cidrsOverlap(b, s))) out.push(i);
  }
  return out;
}

describe('properties over many seeds', () => {
  it('the random pick is exactly the k-th free subnet, never a taken or excluded one', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = seeded(seed);
      const subnetLen = 20 + Math.floor(rnd() * 6);
      const cfg = parseNetworkConfig({ Network: '10.42.0.0/18', SubnetLen: subnetLen });
      const n = enumerateSubnets(cfg);
      // Leases of assorted lengths, some outside the range or the network.
      const leases: Lease[] = [];
      const count = Math.floor(rnd() * n * 1.2);
      for (let i = 0; i < count; i++) {
        const len = 17 + Math.floor(rnd() * 12);
        const addr = (0x0a2a0000 + Math.floor(rnd() * 2 ** 15)) >>> 0;
        leases.push(lease({ addr: (addr & (0xffffffff << (32 - len))) >>> 0, len }, `192.0.2.${2 + (i % 200)}`));
      }
      const exclude = rnd() < 0.5 ? [subnetAt(cfg, Math.floor(rnd() * n))] : [];
      const free = freeIndexes(cfg, [...leases.map((l) => l.subnet), ...exclude]);

      const r = rnd();
      const choice = chooseSubnet({ config: cfg, leases, publicIP: ME, exclude, random: () => r });
      if (free.length === 0) {
        expect(choice.kind).toBe('exhausted');
        continue;
      }
      expect(choice.kind).toBe('random');
      const k = Math.floor(r * free.length);
      expect(subnetOf(choice)).toBe(formatCidr(subnetAt(cfg, free[k]!)));
    }
  });

  it('filling a network one host at a time hands out every subnet once, then exhausted', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/22', SubnetLen: 27 });
    const random = seeded(99);
    const leases: Lease[] = [];
    for (;;) {
      const choice = chooseSubnet({ config: cfg, leases, publicIP: `192.0.2.${leases.length % 250}`, random });
      if (choice.kind === 'exhausted') break;
      expect(choice.kind).toBe('random');
      const s = (choice as { subnet: Cidr }).subnet;
      expect(leases.some((l) => cidrsOverlap(l.subnet, s))).toBe(false);
      leases.push(lease(s, `198.51.100.${leases.length % 250}`));
    }
    expect(leases.length).toBe(enumerateSubnets(cfg));
  });

  it('spreads picks over all free subnets', () => {
    const random = seeded(5);
    const counts = new Map<string, number>();
    const leases = [lease('10.42.2.0/24', '192.0.2.7'), lease('10.42.200.0/24', '192.0.2.8')];
    for (let i = 0; i < 25_300; i++) {
      const s = subnetOf(chooseSubnet({ config: net16, leases, publicIP: ME, random }))!;
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    expect(counts.size).toBe(253);
    // 100 expected per subnet; a 4x spread would mean a biased mapping, not chance.
    expect(Math.min(...counts.values())).toBeGreaterThan(50);
    expect(Math.max(...counts.values())).toBeLessThan(200);
  });
});

describe('scale', () => {
  it('1000 leases in a /16 (SubnetLen 26): fills the rest without collisions', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/16', SubnetLen: 26 });
    const random = seeded(7);
    const leases: Lease[] = [];
    for (let i = 0; i < 1000; i++) {
      const choice = chooseSubnet({ config: cfg, leases, publicIP: `198.51.${i >> 8}.${i & 255}`, random });
      expect(choice.kind).toBe('random');
      leases.push(lease((choice as { subnet: Cidr }).subnet, `198.51.${i >> 8}.${i & 255}`));
    }
    const keys = new Set(leases.map((l) => formatCidr(l.subnet)));
    expect(keys.size).toBe(1000);
    // The 1000th host restarting finds its own lease among them.
    const last = leases[999]!;
    expect(chooseSubnet({ config: cfg, leases, publicIP: last.attrs.publicIP, random })).toEqual({ kind: 'existing', lease: last });
  });

  it('a /8 cut into /30s (4M subnets) with 1000 leases needs no big array', () => {
    const cfg = parseNetworkConfig({ Network: '10.0.0.0/8', SubnetLen: 30 });
    const random = seeded(8);
    const leases = Array.from({ length: 1000 }, (_, i) => lease(subnetAt(cfg, i * 4000), `198.51.100.${i % 250}`));
    for (let i = 0; i < 100; i++) {
      const choice = chooseSubnet({ config: cfg, leases, publicIP: ME, random });
      expect(choice.kind).toBe('random');
      const s = (choice as { subnet: Cidr }).subnet;
      expect(leases.some((l) => cidrsOverlap(l.subnet, s))).toBe(false);
    }
  });
});

describe('a kept index of the set', () => {
  it('choosing with indexTaken(set) gives exactly the choices made without it, exclusions included', () => {
    const rnd = seeded(11);
    const leases = Array.from({ length: 300 }, () => lease(subnetAt(net16, Math.floor(rnd() * enumerateSubnets(net16))), '192.0.2.9'));
    const taken = indexTaken(net16, leases);
    for (let seed = 0; seed < 200; seed++) {
      const exclude = seed % 3 === 0 ? [subnetAt(net16, seed), subnetAt(net16, seed + 7)] : [];
      const a = chooseSubnet({ config: net16, leases, publicIP: ME, exclude, random: seeded(seed) });
      const b = chooseSubnet({ config: net16, leases, publicIP: ME, exclude, random: seeded(seed), taken });
      expect(b).toEqual(a);
      for (const x of exclude) expect(cidrsOverlap(x, parseCidr(subnetOf(b)!))).toBe(false);
    }
  });
});
