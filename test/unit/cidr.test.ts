// Unit tests for ipam/cidr: strict parsing, u32 arithmetic at the edges of the
// address space, flannel subnet keys, and index-based subnet enumeration.
import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  cidrEquals,
  cidrOf,
  cidrSize,
  cidrsOverlap,
  enumerateSubnets,
  formatCidr,
  formatIp,
  isHostAddressUsable,
  isSubnetValidInConfig,
  lastAddress,
  maskOf,
  nthAddress,
  parseAddrPrefix,
  parseCidr,
  parseIp,
  parseSubnetKey,
  subnetAt,
  subnetKey,
} from '../../ipam/cidr.js';
import { isWeftError } from '../../ipam/errors.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';

const c = parseCidr;

describe('parseIp / formatIp', () => {
  it.each([
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['10.42.7.1', 0x0a2a0701],
    ['192.168.0.255', 0xc0a800ff],
    ['128.0.0.0', 0x80000000],
  ])('%s <-> %d', (text, n) => {
    expect(parseIp(text)).toBe(n);
    expect(formatIp(n)).toBe(text);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.-4', 'a.b.c.d', '1..3.4', '1.2.3.4/24', '::1', '0x1.2.3.4', '1e2.0.0.0'])(
    'rejects %j with INVALID_ARGUMENT',
    (text) => {
      expect(() => parseIp(text)).toThrow();
      try {
        parseIp(text);
      } catch (e) {
        expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
      }
    },
  );

  it('formatIp normalises signed input', () => {
    expect(formatIp(-1)).toBe('255.255.255.255');
    expect(formatIp(0x80000000 | 0)).toBe('128.0.0.0');
  });
});

describe('maskOf', () => {
  it.each([
    [0, 0],
    [1, 0x80000000],
    [8, 0xff000000],
    [24, 0xffffff00],
    [31, 0xfffffffe],
    [32, 0xffffffff],
  ])('/%d', (len, mask) => expect(maskOf(len)).toBe(mask));
  it('rejects out of range', () => {
    expect(() => maskOf(33)).toThrow(/0\.\.32/);
    expect(() => maskOf(-1)).toThrow();
    expect(() => maskOf(1.5)).toThrow();
  });
});

describe('parseCidr / formatCidr', () => {
  it.each(['10.42.0.0/16', '0.0.0.0/0', '255.255.255.255/32', '10.42.7.0/24', '128.0.0.0/1'])('round trips %s', (s) => {
    expect(formatCidr(parseCidr(s))).toBe(s);
  });

  it('rejects host bits with a suggestion', () => {
    expect(() => parseCidr('10.42.1.5/16')).toThrow('10.42.1.5/16 has host bits set; did you mean 10.42.0.0/16?');
  });

  it.each(['10.42.0.0', '10.42.0.0/33', '10.42.0.0/', '10.42.0.0/016', '10.42.0.0/-1', '10.42.0.0/24/1', '10.42.0/16', '/16', '10.42.0.0/ 16'])(
    'rejects %j',
    (s) => expect(() => parseCidr(s)).toThrow(),
  );

  it('parseAddrPrefix keeps host bits', () => {
    expect(parseAddrPrefix('10.42.7.1/24')).toEqual({ addr: parseIp('10.42.7.1'), len: 24 });
    expect(cidrOf(parseIp('10.42.7.1'), 24)).toEqual(c('10.42.7.0/24'));
  });
});

describe('sizes, containment, overlap', () => {
  it('cidrSize and lastAddress', () => {
    expect(cidrSize(c('0.0.0.0/0'))).toBe(2 ** 32);
    expect(cidrSize(c('10.0.0.0/8'))).toBe(2 ** 24);
    expect(cidrSize(c('1.2.3.4/32'))).toBe(1);
    expect(formatIp(lastAddress(c('10.42.0.0/16')))).toBe('10.42.255.255');
    expect(formatIp(lastAddress(c('0.0.0.0/0')))).toBe('255.255.255.255');
    expect(formatIp(lastAddress(c('255.255.255.0/24')))).toBe('255.255.255.255');
  });

  it('cidrContains addresses and prefixes', () => {
    const net = c('10.42.0.0/16');
    expect(cidrContains(net, parseIp('10.42.255.255'))).toBe(true);
    expect(cidrContains(net, parseIp('10.43.0.0'))).toBe(false);
    expect(cidrContains(net, c('10.42.7.0/24'))).toBe(true);
    expect(cidrContains(net, net)).toBe(true);
    expect(cidrContains(net, c('10.42.0.0/15'))).toBe(false);
    expect(cidrContains(c('0.0.0.0/0'), parseIp('255.255.255.255'))).toBe(true);
    expect(cidrContains(c('128.0.0.0/1'), c('200.0.0.0/8'))).toBe(true);
  });

  it('cidrsOverlap is symmetric and exact', () => {
    const pairs: [string, string, boolean][] = [
      ['10.42.0.0/16', '10.42.7.0/24', true],
      ['10.42.7.0/24', '10.42.7.128/25', true],
      ['10.42.7.0/24', '10.42.8.0/24', false],
      ['10.42.0.0/16', '10.43.0.0/16', false],
      ['0.0.0.0/0', '1.2.3.4/32', true],
      ['255.255.255.0/24', '255.255.255.255/32', true],
    ];
    for (const [a, b, want] of pairs) {
      expect(cidrsOverlap(c(a), c(b))).toBe(want);
      expect(cidrsOverlap(c(b), c(a))).toBe(want);
    }
  });

  it('cidrEquals', () => {
    expect(cidrEquals(c('10.0.0.0/8'), c('10.0.0.0/8'))).toBe(true);
    expect(cidrEquals(c('10.0.0.0/8'), c('10.0.0.0/9'))).toBe(false);
  });
});

describe('addresses in a subnet', () => {
  it('nthAddress', () => {
    const s = c('10.42.7.0/24');
    expect(formatIp(nthAddress(s, 0))).toBe('10.42.7.0');
    expect(formatIp(nthAddress(s, 1))).toBe('10.42.7.1');
    expect(formatIp(nthAddress(s, 255))).toBe('10.42.7.255');
    expect(() => nthAddress(s, 256)).toThrow(/outside 10\.42\.7\.0\/24/);
    expect(() => nthAddress(s, -1)).toThrow();
    expect(formatIp(nthAddress(c('255.255.255.0/24'), 255))).toBe('255.255.255.255');
  });

  it('isHostAddressUsable excludes network and broadcast', () => {
    const s = c('10.42.7.0/24');
    expect(isHostAddressUsable(s, parseIp('10.42.7.0'))).toBe(false);
    expect(isHostAddressUsable(s, parseIp('10.42.7.255'))).toBe(false);
    expect(isHostAddressUsable(s, parseIp('10.42.7.1'))).toBe(true);
    expect(isHostAddressUsable(s, parseIp('10.42.7.254'))).toBe(true);
    expect(isHostAddressUsable(s, parseIp('10.42.8.1'))).toBe(false);
    expect(isHostAddressUsable(c('10.0.0.0/31'), parseIp('10.0.0.0'))).toBe(true);
    expect(isHostAddressUsable(c('10.0.0.1/32'), parseIp('10.0.0.1'))).toBe(true);
  });
});

describe('flannel subnet keys', () => {
  it('round trips', () => {
    expect(subnetKey(c('10.42.7.0/24'))).toBe('10.42.7.0-24');
    expect(parseSubnetKey('10.42.7.0-24')).toEqual(c('10.42.7.0/24'));
    expect(parseSubnetKey('10.42.7.128-25')).toEqual(c('10.42.7.128/25'));
  });

  it.each(['', '10.42.7.0', '10.42.7.0/24', '10.42.7.0-', '10.42.7.0-33', '10.42.7.5-24', '10.42.7.0-24-1', 'x-24', '10.42.7.0-024', ' 10.42.7.0-24', '10.42.7.0-24\n'])(
    'rejects %j',
    (s) => expect(() => parseSubnetKey(s)).toThrow(/not a subnet key/),
  );
});

describe('enumerateSubnets / subnetAt', () => {
  it('walks SubnetMin..SubnetMax of the default /16 config', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/16' });
    expect(enumerateSubnets(cfg)).toBe(255);
    expect(formatCidr(subnetAt(cfg, 0))).toBe('10.42.1.0/24');
    expect(formatCidr(subnetAt(cfg, 254))).toBe('10.42.255.0/24');
    expect(() => subnetAt(cfg, 255)).toThrow();
    expect(() => subnetAt(cfg, -1)).toThrow();
  });

  it('handles a /8 cut into /30s and the top of the address space', () => {
    const big = parseNetworkConfig({ Network: '10.0.0.0/8', SubnetLen: 30 });
    expect(enumerateSubnets(big)).toBe(2 ** 22 - 1);
    expect(formatCidr(subnetAt(big, 2 ** 22 - 2))).toBe('10.255.255.252/30');
    const top = parseNetworkConfig({ Network: '255.255.0.0/16' });
    expect(formatCidr(subnetAt(top, enumerateSubnets(top) - 1))).toBe('255.255.255.0/24');
  });

  it('is empty when SubnetMax < SubnetMin', () => {
    expect(enumerateSubnets({ subnetLen: 24, subnetMin: 10, subnetMax: 5 })).toBe(0);
  });

  it('isSubnetValidInConfig', () => {
    const cfg = parseNetworkConfig({ Network: '10.42.0.0/16', SubnetMin: '10.42.10.0', SubnetMax: '10.42.20.0' });
    expect(isSubnetValidInConfig(cfg, c('10.42.10.0/24'))).toBe(true);
    expect(isSubnetValidInConfig(cfg, c('10.42.20.0/24'))).toBe(true);
    expect(isSubnetValidInConfig(cfg, c('10.42.9.0/24'))).toBe(false);
    expect(isSubnetValidInConfig(cfg, c('10.42.21.0/24'))).toBe(false);
    expect(isSubnetValidInConfig(cfg, c('10.42.10.0/25'))).toBe(false);
    expect(isSubnetValidInConfig(cfg, c('10.43.10.0/24'))).toBe(false);
  });
});
