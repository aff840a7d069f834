// Unit tests for ipam/subnet-env: the exact file flannel consumers expect, and
// the tolerant read-back the agent uses to recover its previous subnet.
import { describe, expect, it } from 'vitest';
import { parseCidr, parseIp } from '../../ipam/cidr.js';
import { parseSubnetEnv, renderSubnetEnv } from '../../ipam/subnet-env.js';

const env = { network: parseCidr('10.42.0.0/16'), subnet: parseCidr('10.42.7.0/24'), mtu: 1450, ipMasq: false };

describe('renderSubnetEnv', () => {
  it('writes weft and flannel names, subnet as its first address', () => {
    expect(renderSubnetEnv(env)).toBe(
      [
        'WEFT_NETWORK=10.42.0.0/16',
        'WEFT_SUBNET=10.42.7.1/24',
        'WEFT_MTU=1450',
        'WEFT_IPMASQ=false',
        'FLANNEL_NETWORK=10.42.0.0/16',
        'FLANNEL_SUBNET=10.42.7.1/24',
        'FLANNEL_MTU=1450',
        'FLANNEL_IPMASQ=false',
        '',
      ].join('\n'),
    );
  });

  it('rejects a bad MTU', () => {
    expect(() => renderSubnetEnv({ ...env, mtu: 0 })).toThrow(/MTU/);
    expect(() => renderSubnetEnv({ ...env, mtu: 1450.5 })).toThrow(/MTU/);
  });
});

describe('parseSubnetEnv', () => {
  it('round trips', () => {
    expect(parseSubnetEnv(renderSubnetEnv({ ...env, ipMasq: true }))).toEqual({
      network: env.network,
      subnet: env.subnet,
      gateway: parseIp('10.42.7.1'),
      mtu: 1450,
      ipMasq: true,
    });
  });

  it('reads a file written by flannel', () => {
    const text = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
    expect(parseSubnetEnv(text)).toEqual({
      network: parseCidr('10.244.0.0/16'),
      subnet: parseCidr('10.244.3.0/24'),
      gateway: parseIp('10.244.3.1'),
      mtu: 1450,
      ipMasq: true,
    });
  });

  it('prefers WEFT_ names, falls back to FLANNEL_ when the WEFT_ value is bad', () => {
    const text = [
      '# written by hand',
      '',
      'export WEFT_SUBNET="10.42.9.1/24"',
      'FLANNEL_SUBNET=10.42.8.1/24',
      "WEFT_MTU='1400'",
      'FLANNEL_MTU=1450',
      'WEFT_NETWORK=garbage',
      'FLANNEL_NETWORK=10.42.0.0/16',
      'WEFT_IPMASQ=yes',
      'no equals sign here',
      '=value without name',
      'OTHER=1\r',
    ].join('\r\n');
    expect(parseSubnetEnv(text)).toEqual({
      network: parseCidr('10.42.0.0/16'),
      subnet: parseCidr('10.42.9.0/24'),
      gateway: parseIp('10.42.9.1'),
      mtu: 1400,
    });
  });

  it('returns nothing from an empty or foreign file', () => {
    expect(parseSubnetEnv('')).toEqual({});
    expect(parseSubnetEnv('\u0000\u0001binary')).toEqual({});
    expect(parseSubnetEnv('WEFT_SUBNET=10.42.7.1\nWEFT_MTU=-5\nWEFT_MTU=abc')).toEqual({});
  });
});
