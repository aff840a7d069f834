// Result shapes per spec version, reading any shape back, prevResult
// conversion and the ADD merge over a prevResult.
import { describe, expect, it } from 'vitest';
import {
  convertPrevResult,
  formatResult,
  mergeResults,
  parseResult,
  type InternalResult,
} from '../../cni-plugin/result.js';
import { CniError } from '../../cni-plugin/errors.js';
import type { CniVersion } from '../../cni-plugin/version.js';

const WEFT: InternalResult = {
  interfaces: [
    { name: 'veth1234', mac: 'aa:bb:cc:00:00:01', mtu: 1450 },
    { name: 'eth0', mac: 'c2:11:22:33:44:55', sandbox: '/run/netns/test', mtu: 1450 },
  ],
  ips: [
    { address: '10.42.7.5/24', gateway: '10.42.7.1', interface: 1 },
    { address: 'fd42::5/64', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1', mtu: 1450, table: 100 }],
  dns: { nameservers: ['10.42.7.1'], search: ['weft.local'] },
};

describe('formatResult', () => {
  it.each<[CniVersion, string | undefined, boolean]>([
    ['0.3.0', '4', false],
    ['0.3.1', '4', false],
    ['0.4.0', '4', false],
    ['1.0.0', undefined, false],
    ['1.1.0', undefined, true],
  ])('%s: ips[].version=%s, 1.1 fields=%s', (version, ipVersion, v11) => {
    const out = formatResult(WEFT, version);
    expect(out['cniVersion']).toBe(version);
    const ips = out['ips'] as Record<string, unknown>[];
    expect(ips[0]?.['version']).toBe(ipVersion);
    expect(ips[1]?.['version']).toBe(ipVersion === undefined ? undefined : '6');
    expect('version' in (ips[0] ?? {})).toBe(ipVersion !== undefined);
    const ifs = out['interfaces'] as Record<string, unknown>[];
    expect(ifs[1]?.['sandbox']).toBe('/run/netns/test');
    expect('sandbox' in (ifs[0] ?? {})).toBe(false);
    expect('mtu' in (ifs[1] ?? {})).toBe(v11);
    const routes = out['routes'] as Record<string, unknown>[];
    expect('table' in (routes[0] ?? {})).toBe(v11);
    expect(routes[0]?.['gw']).toBe('10.42.7.1');
  });

  it('writes the 0.4.0 shape exactly', () => {
    expect(formatResult(WEFT, '0.4.0')).toEqual({
      cniVersion: '0.4.0',
      interfaces: [
        { name: 'veth1234', mac: 'aa:bb:cc:00:00:01' },
        { name: 'eth0', mac: 'c2:11:22:33:44:55', sandbox: '/run/netns/test' },
      ],
      ips: [
        { version: '4', address: '10.42.7.5/24', gateway: '10.42.7.1', interface: 1 },
        { version: '6', address: 'fd42::5/64', interface: 1 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1' }],
      dns: { nameservers: ['10.42.7.1'], search: ['weft.local'] },
    });
  });

  it('leaves out an empty dns', () => {
    expect('dns' in formatResult({ ...WEFT, dns: {} }, '1.0.0')).toBe(false);
  });
});

describe('parseResult / convertPrevResult', () => {
  const prev040 = {
    cniVersion: '0.4.0',
    interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }],
    ips: [{ version: '4', address: '10.1.0.2/16', gateway: '10.1.0.1', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  };

  it('turns a 0.4.0 prevResult into the 1.0.0 shape', () => {
    expect(convertPrevResult(prev040, '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }],
      ips: [{ address: '10.1.0.2/16', gateway: '10.1.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
  });

  it('turns a 1.1.0 prevResult into the 0.3.1 shape, dropping 1.1 fields', () => {
    const prev110 = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mtu: 9000, pciID: '0000:00:1f.6' }], ips: [{ address: 'fd00::2/64' }] };
    expect(convertPrevResult(prev110, '0.3.1')).toEqual({
      cniVersion: '0.3.1',
      interfaces: [{ name: 'eth0' }],
      ips: [{ version: '6', address: 'fd00::2/64' }],
      routes: [],
    });
  });

  it('keeps 1.1 fields through a 1.1.0 round trip', () => {
    const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mtu: 9000, socketPath: '/s' }], ips: [], routes: [{ dst: '10.0.0.0/8', scope: 253 }] };
    expect(convertPrevResult(prev, '1.1.0')).toEqual(prev);
  });

  it.each([
    ['not an object', 'x'],
    ['0.2.0 shape', { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } }],
    ['address without prefix', { ips: [{ address: '10.0.0.2' }] }],
    ['interface without name', { interfaces: [{ mac: 'x' }] }],
    ['ips not a list', { ips: {} }],
    ['bad gateway', { ips: [{ address: '10.0.0.2/24', gateway: 'router' }] }],
    ['bad route', { routes: [{ dst: 'default' }] }],
    ['bad nameserver', { dns: { nameservers: ['dns.example'] } }],
  ])('%s is a decoding failure (code 6)', (_name, raw) => {
    try {
      parseResult(raw);
      expect.unreachable();
    } catch (e) {
      expect((e as CniError).code).toBe(6);
    }
  });
});

describe('mergeResults', () => {
  it('appends weft after the earlier plugin and shifts interface indexes', () => {
    const prev = parseResult({
      interfaces: [{ name: 'lo0' }],
      ips: [{ address: '192.168.0.2/24', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1' }],
      dns: { domain: 'corp' },
    });
    const merged = mergeResults(prev, WEFT);
    expect(merged.interfaces.map((i) => i.name)).toEqual(['lo0', 'veth1234', 'eth0']);
    expect(merged.ips.map((ip) => ip.interface)).toEqual([0, 2, 2]);
    expect(merged.routes).toHaveLength(1); // the identical default route is not repeated
    expect(merged.dns).toEqual({ nameservers: ['10.42.7.1'], domain: 'corp', search: ['weft.local'] });
  });
});
