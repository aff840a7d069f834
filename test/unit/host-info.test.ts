// Underlay detection from plain data: /proc/net/route text and an interface table.

import { describe, expect, it } from 'vitest';
import { chooseUnderlay, defaultRouteInterface } from '../../agent/host-info.js';

const ROUTES = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000A8C6\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t00000000\t0100A8C6\t0003\t0\t0\t0\t00000000\t0\t0\t0
`;
const IFACES = {
  lo: [{ address: '127.0.0.1', family: 'IPv4' as const, internal: true }],
  eth0: [
    { address: 'fe80::1', family: 'IPv6' as const, internal: false },
    { address: '198.18.0.11', family: 'IPv4' as const, internal: false },
  ],
  eth1: [{ address: '198.19.0.5', family: 'IPv4' as const, internal: false }],
  bare: [],
};

describe('underlay detection', () => {
  it('finds the default route interface', () => {
    expect(defaultRouteInterface(ROUTES)).toBe('eth1');
    expect(defaultRouteInterface('Iface\tDestination\n')).toBeUndefined();
  });

  it('uses --iface and its first IPv4 address', () => {
    expect(chooseUnderlay({ interfaces: IFACES, defaultIface: 'eth1', iface: 'eth0' })).toEqual({ iface: 'eth0', publicIP: '198.18.0.11' });
  });

  it('finds the interface that holds --public-ip', () => {
    expect(chooseUnderlay({ interfaces: IFACES, defaultIface: 'eth1', publicIP: '198.18.0.11' })).toEqual({ iface: 'eth0', publicIP: '198.18.0.11' });
  });

  it('keeps a NATed --public-ip with the default route interface', () => {
    expect(chooseUnderlay({ interfaces: IFACES, defaultIface: 'eth1', publicIP: '203.0.113.9' })).toEqual({ iface: 'eth1', publicIP: '203.0.113.9' });
  });

  it('falls back to the default route interface', () => {
    expect(chooseUnderlay({ interfaces: IFACES, defaultIface: 'eth1' })).toEqual({ iface: 'eth1', publicIP: '198.19.0.5' });
  });

  it.each([
    [{ iface: 'nope' }, /--iface nope: no such interface/],
    [{ iface: 'bare' }, /--iface bare has no IPv4 address/],
    [{}, /no default route/],
  ])('explains what to set when it cannot decide (%j)', (opts, msg) => {
    expect(() => chooseUnderlay({ interfaces: IFACES, defaultIface: undefined, ...opts })).toThrow(msg);
  });
});
