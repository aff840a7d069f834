// Unit tests for ipam/network-config: flannel's rules and defaults, table-driven,
// every rejection naming flannel's field, and the serialise/parse round trip.
import { describe, expect, it } from 'vitest';
import { formatCidr, formatIp } from '../../ipam/cidr.js';
import { isWeftError } from '../../ipam/errors.js';
import {
  parseNetworkConfig,
  parseNetworkConfigWithWarnings,
  serializeNetworkConfig,
} from '../../ipam/network-config.js';
import type { NetworkConfig } from '../../ipam/types.js';

/** The config as flannel would print it, for readable expectations. */
function view(cfg: NetworkConfig): Record<string, unknown> {
  return {
    network: formatCidr(cfg.network),
    subnetLen: cfg.subnetLen,
    subnetMin: formatIp(cfg.subnetMin),
    subnetMax: formatIp(cfg.subnetMax),
    backend: `${cfg.backend.type}/${cfg.backend.vni}/${cfg.backend.port}`,
  };
}

function errorOf(input: unknown): { field: unknown; message: string } {
  try {
    parseNetworkConfig(input);
  } catch (e) {
    expect(isWeftError(e, 'INVALID_CONFIG')).toBe(true);
    const err = e as Error & { details: Record<string, unknown> };
    return { field: err.details.field, message: err.message };
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('valid configs and defaults', () => {
  const cases: [string, unknown, Record<string, unknown>][] = [
    [
      'flannel docs example (kube-flannel net-conf.json)',
      `{
        "Network": "10.244.0.0/16",
        "Backend": {
          "Type": "vxlan"
        }
      }`,
      { network: '10.244.0.0/16', subnetLen: 24, subnetMin: '10.244.1.0', subnetMax: '10.244.255.0', backend: 'vxlan/1/8472' },
    ],
    [
      'flannel configuration.md example with everything set',
      `{
        "Network": "10.0.0.0/8",
        "SubnetLen": 20,
        "SubnetMin": "10.10.0.0",
        "SubnetMax": "10.99.0.0",
        "Backend": {
          "Type": "udp",
          "Port": 7890
        }
      }`,
      { network: '10.0.0.0/8', subnetLen: 20, subnetMin: '10.10.0.0', subnetMax: '10.99.0.0', backend: 'udp/1/7890' },
    ],
    [
      'no Backend at all',
      { Network: '10.42.0.0/16' },
      { network: '10.42.0.0/16', subnetLen: 24, subnetMin: '10.42.1.0', subnetMax: '10.42.255.0', backend: 'vxlan/1/8472' },
    ],
    ['/22 still gets /24', { Network: '10.42.0.0/22' }, { subnetLen: 24, subnetMin: '10.42.1.0', subnetMax: '10.42.3.0' }],
    ['/23 gets prefix + 2', { Network: '10.42.0.0/23' }, { subnetLen: 25, subnetMin: '10.42.0.128', subnetMax: '10.42.1.128' }],
    ['/28 gets /30', { Network: '10.42.0.0/28' }, { subnetLen: 30, subnetMin: '10.42.0.4', subnetMax: '10.42.0.12' }],
    ['SubnetLen 0 means default', { Network: '10.42.0.0/16', SubnetLen: 0 }, { subnetLen: 24 }],
    ['SubnetLen exactly prefix + 2', { Network: '10.42.0.0/16', SubnetLen: 18 }, { subnetLen: 18, subnetMin: '10.42.64.0', subnetMax: '10.42.192.0' }],
    ['SubnetLen 30', { Network: '10.42.0.0/16', SubnetLen: 30 }, { subnetLen: 30, subnetMax: '10.42.255.252' }],
    ['SubnetMin 0.0.0.0 means default', { Network: '10.42.0.0/16', SubnetMin: '0.0.0.0', SubnetMax: null }, { subnetMin: '10.42.1.0', subnetMax: '10.42.255.0' }],
    ['SubnetMin == SubnetMax', { Network: '10.42.0.0/16', SubnetMin: '10.42.5.0', SubnetMax: '10.42.5.0' }, { subnetMin: '10.42.5.0', subnetMax: '10.42.5.0' }],
    ['SubnetMin may be the first subnet when explicit', { Network: '10.42.0.0/16', SubnetMin: '10.42.0.0' }, { subnetMin: '10.42.0.0' }],
    ['vxlan VNI and Port', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: 42, Port: 4789 } }, { backend: 'vxlan/42/4789' }],
    ['vxlan Port 0 is the kernel default 8472', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', Port: 0 } }, { backend: 'vxlan/1/8472' }],
    ['vxlan VNI 0 stays 0 as in flannel', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: 0 } }, { backend: 'vxlan/0/8472' }],
    ['vxlan max VNI', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: 16777215, Port: 65535 } }, { backend: 'vxlan/16777215/65535' }],
    ['udp default port', { Network: '10.42.0.0/16', Backend: { Type: 'udp' } }, { backend: 'udp/1/8285' }],
    ['Type is case-insensitive as in flannel', { Network: '10.42.0.0/16', Backend: { Type: 'VXLAN' } }, { backend: 'vxlan/1/8472' }],
    ['Backend without Type is vxlan', { Network: '10.42.0.0/16', Backend: { VNI: 3 } }, { backend: 'vxlan/3/8472' }],
    ['Backend null is default', { Network: '10.42.0.0/16', Backend: null }, { backend: 'vxlan/1/8472' }],
    ['keys match case-insensitively like Go', { network: '10.42.0.0/16', subnetlen: 26, backend: { type: 'udp', port: 1 } }, { subnetLen: 26, backend: 'udp/1/1' }],
    ['EnableIPv4 true and EnableIPv6 false accepted', { Network: '10.42.0.0/16', EnableIPv4: true, EnableIPv6: false }, { subnetLen: 24 }],
    ['host bits in Network are masked, as flannel does', { Network: '10.42.1.5/16' }, { network: '10.42.0.0/16' }],
    ['top of the address space', { Network: '255.255.0.0/16' }, { subnetMin: '255.255.1.0', subnetMax: '255.255.255.0' }],
    ['already parsed object with flannel extras', { Network: '10.42.0.0/16', EnableNFTables: true, Backend: { Type: 'vxlan', GBP: true, DirectRouting: true, MTU: 1400 } }, { backend: 'vxlan/1/8472' }],
  ];
  it.each(cases)('%s', (_name, input, want) => {
    expect(view(parseNetworkConfig(input))).toMatchObject(want);
  });

  it('accepts a Buffer', () => {
    expect(parseNetworkConfig(Buffer.from('{"Network":"10.42.0.0/16"}')).subnetLen).toBe(24);
  });
});

describe('rejections name the flannel field', () => {
  const cases: [string, unknown, string, RegExp][] = [
    ['invalid JSON', '{"Network": ', '(root)', /not valid JSON/],
    ['JSON array', '[]', '(root)', /must be a JSON object/],
    ['JSON string', '"10.42.0.0/16"', '(root)', /must be a JSON object/],
    ['null', 'null', '(root)', /must be a JSON object such as .*, got null$/],
    ['non-JSON object input', 42, '(root)', /must be a JSON object/],
    ['undefined input', undefined, '(root)', /must be a JSON object such as .*, got undefined$/],
    ['bigint input', 5n, '(root)', /must be a JSON object/],
    ['Network missing', '{}', 'Network', /is required/],
    ['Network null', { Network: null }, 'Network', /is required/],
    ['Network garbage', { Network: 'ten.42/16' }, 'Network', /not an IPv4/],
    ['Network without length', { Network: '10.42.0.0' }, 'Network', /missing \/length/],
    ['Network wrong type', { Network: 167903232 }, 'Network', /must be a string/],
    ['Network /0', { Network: '0.0.0.0/0' }, 'Network', /whole address space/],
    ['Network too small', { Network: '10.42.0.0/29' }, 'Network', /Network is too small. Minimum useful network prefix is \/28/],
    ['Network /32', { Network: '10.42.0.1/32' }, 'Network', /Minimum useful network prefix is \/28/],
    ['SubnetLen 31', { Network: '10.42.0.0/16', SubnetLen: 31 }, 'SubnetLen', /SubnetLen must be less than \/31/],
    ['SubnetLen 32', { Network: '10.42.0.0/16', SubnetLen: 32 }, 'SubnetLen', /SubnetLen must be less than \/31/],
    ['SubnetLen leaves < 4 subnets', { Network: '10.42.0.0/16', SubnetLen: 17 }, 'SubnetLen', /Network must be able to accommodate at least four subnets/],
    ['SubnetLen shorter than Network', { Network: '10.42.0.0/16', SubnetLen: 8 }, 'SubnetLen', /at least four subnets/],
    ['SubnetLen as string', { Network: '10.42.0.0/16', SubnetLen: '24' }, 'SubnetLen', /must be a non-negative integer, got string "24"/],
    ['SubnetLen fractional', { Network: '10.42.0.0/16', SubnetLen: 24.5 }, 'SubnetLen', /non-negative integer/],
    ['SubnetLen negative', { Network: '10.42.0.0/16', SubnetLen: -24 }, 'SubnetLen', /non-negative integer/],
    ['SubnetMin outside Network', { Network: '10.42.0.0/16', SubnetMin: '10.43.1.0' }, 'SubnetMin', /SubnetMin is not in the range of the Network/],
    ['SubnetMax outside Network', { Network: '10.42.0.0/16', SubnetMax: '10.41.255.0' }, 'SubnetMax', /SubnetMax is not in the range of the Network/],
    ['SubnetMin unaligned', { Network: '10.42.0.0/16', SubnetMin: '10.42.1.5' }, 'SubnetMin', /SubnetMin is not on a SubnetLen boundary: 10\.42\.1\.5/],
    ['SubnetMax unaligned', { Network: '10.42.0.0/16', SubnetLen: 20, SubnetMax: '10.42.17.0' }, 'SubnetMax', /SubnetMax is not on a SubnetLen boundary/],
    ['SubnetMin garbage', { Network: '10.42.0.0/16', SubnetMin: '10.42.1' }, 'SubnetMin', /not an IPv4 address/],
    ['SubnetMin as number', { Network: '10.42.0.0/16', SubnetMin: 5 }, 'SubnetMin', /must be a string/],
    ['SubnetMin above SubnetMax', { Network: '10.42.0.0/16', SubnetMin: '10.42.9.0', SubnetMax: '10.42.2.0' }, 'SubnetMin', /above SubnetMax/],
    ['Backend not an object', { Network: '10.42.0.0/16', Backend: 'vxlan' }, 'Backend', /must be an object/],
    ['Backend array', { Network: '10.42.0.0/16', Backend: [] }, 'Backend', /must be an object/],
    ['Backend.Type host-gw', { Network: '10.42.0.0/16', Backend: { Type: 'host-gw' } }, 'Backend.Type', /"host-gw" is not supported \(yet\); allowed values: "vxlan", "udp"/],
    ['Backend.Type empty', { Network: '10.42.0.0/16', Backend: { Type: '' } }, 'Backend.Type', /allowed values/],
    ['Backend.Type number', { Network: '10.42.0.0/16', Backend: { Type: 1 } }, 'Backend.Type', /must be a string/],
    ['Backend.VNI too big', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: 16777216 } }, 'Backend.VNI', /0\.\.16777215/],
    ['Backend.VNI negative', { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: -1 } }, 'Backend.VNI', /non-negative integer/],
    ['Backend.VNI string', { Network: '10.42.0.0/16', Backend: { VNI: '1' } }, 'Backend.VNI', /non-negative integer, got string/],
    ['Backend.Port too big', { Network: '10.42.0.0/16', Backend: { Port: 65536 } }, 'Backend.Port', /0\.\.65535/],
    ['udp Backend.Port string', { Network: '10.42.0.0/16', Backend: { Type: 'udp', Port: '8285' } }, 'Backend.Port', /non-negative integer/],
    ['EnableIPv6', { Network: '10.42.0.0/16', EnableIPv6: true, IPv6Network: 'fc00::/48' }, 'EnableIPv6', /IPv6 not supported yet/],
    ['EnableIPv4 false', { EnableIPv4: false, EnableIPv6: false }, 'EnableIPv4', /IPv6 not supported yet/],
    ['EnableIPv6 wrong type', { Network: '10.42.0.0/16', EnableIPv6: 'true' }, 'EnableIPv6', /true or false/],
  ];
  it.each(cases)('%s', (_name, input, field, message) => {
    const err = errorOf(input);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(`invalid network config: ${field}: `);
  });
});

describe('warnings', () => {
  it('lists flannel fields weft ignores and unknown fields', () => {
    const { warnings } = parseNetworkConfigWithWarnings({
      Network: '10.42.0.0/16',
      EnableIPv4: true,
      EnableNFTables: false,
      IPv6Network: 'fc00::/48',
      SubnetLenn: 24,
      Backend: { Type: 'vxlan', GBP: true, DirectRouting: false, MTU: 1400, Learning: true, Bogus: 1 },
    });
    expect(warnings).toEqual([
      'Backend.GBP: flannel option not used by weft; ignored',
      'Backend.DirectRouting: flannel option not used by weft; ignored',
      'Backend.MTU: flannel option not used by weft; ignored',
      'Backend.Learning: flannel option not used by weft; ignored',
      'Backend.Bogus: unknown field; ignored (typo?)',
      'EnableNFTables: flannel option not used by weft; ignored',
      'IPv6Network: flannel option not used by weft; ignored',
      'SubnetLenn: unknown field; ignored (typo?)',
    ]);
  });

  it('flags VNI on a udp backend and a masked Network', () => {
    expect(parseNetworkConfigWithWarnings({ Network: '10.42.3.0/16', Backend: { Type: 'udp', VNI: 5 } }).warnings).toEqual([
      'Network: 10.42.3.0/16 has host bits set; using 10.42.0.0/16',
      'Backend.VNI: flannel option not used by weft; ignored',
    ]);
  });

  it('is empty for a clean config', () => {
    expect(parseNetworkConfigWithWarnings('{"Network":"10.42.0.0/16","Backend":{"Type":"vxlan","VNI":1}}').warnings).toEqual([]);
  });
});

describe('serializeNetworkConfig', () => {
  it('writes flannel field names with every default filled in', () => {
    expect(JSON.parse(serializeNetworkConfig(parseNetworkConfig({ Network: '10.42.0.0/16' })))).toEqual({
      Network: '10.42.0.0/16',
      SubnetLen: 24,
      SubnetMin: '10.42.1.0',
      SubnetMax: '10.42.255.0',
      Backend: { Type: 'vxlan', VNI: 1, Port: 8472 },
    });
    expect(JSON.parse(serializeNetworkConfig(parseNetworkConfig({ Network: '10.42.0.0/16', Backend: { Type: 'udp' } }))).Backend).toEqual({
      Type: 'udp',
      Port: 8285,
    });
  });

  it.each([
    { Network: '10.42.0.0/16' },
    { Network: '10.0.0.0/8', SubnetLen: 30, SubnetMin: '10.0.0.0', SubnetMax: '10.0.1.0' },
    { Network: '192.168.0.0/28', Backend: { Type: 'udp', Port: 9999 } },
    { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', VNI: 0, Port: 4789 } },
  ])('round trips %j', (input) => {
    const cfg = parseNetworkConfig(input);
    const again = parseNetworkConfigWithWarnings(serializeNetworkConfig(cfg));
    expect(again.config).toEqual(cfg);
    expect(again.warnings).toEqual([]);
  });
});
