// Unit tests for ipam/lease-codec: flannel's lease values both ways, and every
// kind of garbage another writer could leave under <prefix>/subnets/.
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { isWeftError } from '../../ipam/errors.js';
import { decodeLease, decodeLeases, encodeLeaseAttrs, leaseKey, subnetsPrefix } from '../../ipam/lease-codec.js';

const PREFIX = '/weft/network';
const META = { leaseId: '7587862311238391813', modRevision: 42 };
const KEY = `${PREFIX}/subnets/10.42.7.0-24`;

describe('keys', () => {
  it('builds flannel key paths, tolerating a trailing slash on the prefix', () => {
    expect(subnetsPrefix('/coreos.com/network/')).toBe('/coreos.com/network/subnets/');
    expect(leaseKey(PREFIX, parseCidr('10.42.7.0/24'))).toBe(KEY);
  });
});

describe('encodeLeaseAttrs', () => {
  it('writes flannel field names', () => {
    const text = encodeLeaseAttrs({ publicIP: '192.0.2.10', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } });
    expect(text).toBe('{"PublicIP":"192.0.2.10","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}');
  });

  it('refuses to publish a bad PublicIP', () => {
    expect(() => encodeLeaseAttrs({ publicIP: '192.0.2', backendType: 'vxlan', backendData: {} })).toThrow(/not an IPv4 address/);
  });

  it('round trips through decodeLease', () => {
    const attrs = { publicIP: '192.0.2.10', backendType: 'udp', backendData: { nested: { a: [1, 2] } } };
    expect(decodeLease(KEY, encodeLeaseAttrs(attrs), META, PREFIX)).toEqual({
      subnet: parseCidr('10.42.7.0/24'),
      attrs,
      ...META,
    });
  });
});

describe('decodeLease', () => {
  it('reads a value written by flannel, ignoring its IPv6 fields', () => {
    const value =
      '{"PublicIP":"10.0.0.5","PublicIPv6":"fc00::5","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"5a:1b:2c:3d:4e:5f"},"BackendV6Data":{"VNI":1}}';
    const lease = decodeLease('/coreos.com/network/subnets/10.244.3.0-24', value, { leaseId: '0', modRevision: 9 }, '/coreos.com/network');
    expect(lease.subnet).toEqual(parseCidr('10.244.3.0/24'));
    expect(lease.attrs).toEqual({ publicIP: '10.0.0.5', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '5a:1b:2c:3d:4e:5f' } });
    expect(lease.leaseId).toBe('0');
    expect(lease.modRevision).toBe(9);
  });

  it('accepts flannel host-gw values without BackendData', () => {
    const lease = decodeLease(KEY, '{"PublicIP":"10.0.0.5","BackendType":"host-gw"}', META, PREFIX);
    expect(lease.attrs.backendData).toEqual({});
    expect(decodeLease(KEY, '{"PublicIP":"10.0.0.5","BackendData":null}', META, PREFIX).attrs).toEqual({
      publicIP: '10.0.0.5',
      backendType: '',
      backendData: {},
    });
  });

  const garbage: [string, string, string, RegExp][] = [
    ['bad JSON', KEY, '{"PublicIP":', /not valid JSON/],
    ['empty value', KEY, '', /not valid JSON/],
    ['JSON array', KEY, '[1,2]', /not a JSON object/],
    ['JSON null', KEY, 'null', /not a JSON object/],
    ['missing PublicIP', KEY, '{"BackendType":"vxlan"}', /PublicIP is missing/],
    ['PublicIP number', KEY, '{"PublicIP":167772165}', /PublicIP is missing or not a string/],
    ['PublicIP garbage', KEY, '{"PublicIP":"10.0.0.256"}', /PublicIP: not an IPv4 address/],
    ['PublicIP IPv6', KEY, '{"PublicIP":"fc00::1"}', /PublicIP: not an IPv4 address/],
    ['BackendType number', KEY, '{"PublicIP":"10.0.0.5","BackendType":3}', /BackendType is not a string/],
    ['BackendData string', KEY, '{"PublicIP":"10.0.0.5","BackendData":"x"}', /BackendData is not a JSON object/],
    ['BackendData array', KEY, '{"PublicIP":"10.0.0.5","BackendData":[]}', /BackendData is not a JSON object/],
    ['key outside prefix', '/other/subnets/10.42.7.0-24', '{"PublicIP":"10.0.0.5"}', /not under \/weft\/network\/subnets\//],
    ['key not a subnet', `${PREFIX}/subnets/hello`, '{"PublicIP":"10.0.0.5"}', /not a subnet key/],
    ['key with host bits', `${PREFIX}/subnets/10.42.7.9-24`, '{"PublicIP":"10.0.0.5"}', /host bits set/],
    ['key with nested path', `${PREFIX}/subnets/x/10.42.7.0-24`, '{"PublicIP":"10.0.0.5"}', /not a subnet key/],
  ];
  it.each(garbage)('rejects %s with INVALID_ARGUMENT naming the key', (_name, key, value, reason) => {
    let caught: unknown;
    try {
      decodeLease(key, value, META, PREFIX);
    } catch (e) {
      caught = e;
    }
    expect(isWeftError(caught, 'INVALID_ARGUMENT')).toBe(true);
    const err = caught as Error & { details: Record<string, unknown> };
    expect(err.message).toContain(key);
    expect(err.message).toMatch(reason);
    expect(err.details.key).toBe(key);
  });
});

describe('decodeLeases', () => {
  it('keeps the good, skips the bad, never throws', () => {
    const kvs = [
      { key: `${PREFIX}/subnets/10.42.1.0-24`, value: '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{}}', leaseId: '1', modRevision: 5 },
      { key: `${PREFIX}/subnets/10.42.2.0-24`, value: 'garbage', leaseId: '2', modRevision: 6 },
      { key: `${PREFIX}/subnets/nope`, value: '{"PublicIP":"10.0.0.3"}', leaseId: '3', modRevision: 7 },
      { key: `${PREFIX}/subnets/10.42.4.0-24`, value: '{"PublicIP":"10.0.0.4"}', leaseId: '4', modRevision: 8 },
    ];
    const { leases, skipped } = decodeLeases(kvs, PREFIX);
    expect(leases.map((l) => [l.attrs.publicIP, l.leaseId, l.modRevision])).toEqual([
      ['10.0.0.1', '1', 5],
      ['10.0.0.4', '4', 8],
    ]);
    expect(skipped.map((s) => s.key)).toEqual([kvs[1]!.key, kvs[2]!.key]);
    expect(skipped[0]!.reason).toMatch(/not valid JSON/);
  });

  it('handles an empty listing', () => {
    expect(decodeLeases([], PREFIX)).toEqual({ leases: [], skipped: [] });
  });
});
