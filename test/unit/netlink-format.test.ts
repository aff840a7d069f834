// MAC/IP/prefix text <-> bytes (encap/netlink/format.ts) and the errno
// wording of kernel errors (encap/netlink/errors.ts).

import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../ipam/errors.js';
import { AF } from '../../encap/netlink/constants.js';
import { errnoName, fromSystemError, isExists, isNotFound, kernelError } from '../../encap/netlink/errors.js';
import { formatIp, formatMac, parseIp, parseMac, parsePrefix } from '../../encap/netlink/format.js';

describe('MAC addresses', () => {
  it('round-trips and normalises to lower case', () => {
    expect(formatMac(parseMac('02:42:AC:11:00:02'))).toBe('02:42:ac:11:00:02');
    expect(parseMac('00:00:00:00:00:00')).toEqual(Buffer.alloc(6));
  });

  it.each(['02:42:ac:11:00', '0242ac110002', '02-42-ac-11-00-02', 'zz:42:ac:11:00:02', ''])('rejects %j', (mac) => {
    expect(() => parseMac(mac)).toThrow(/invalid MAC address/);
  });
});

describe('IP addresses and prefixes', () => {
  it('round-trips IPv4 and IPv6', () => {
    expect(parseIp('10.42.3.1').toString('hex')).toBe('0a2a0301');
    expect(formatIp(parseIp('10.42.3.1'))).toBe('10.42.3.1');
    expect(formatIp(parseIp('fd00::1'))).toBe('fd00::1');
  });

  it('rejects the loose forms ipaddr.js would take', () => {
    for (const bad of ['10.1', '0x0a.0.0.1', '10.42.3.256', 'weft']) {
      expect(() => parseIp(bad), bad).toThrow(/invalid IP address/);
    }
  });

  it('parses prefixes, a bare address as a host prefix', () => {
    expect(parsePrefix('10.42.3.0/24')).toEqual({ ip: '10.42.3.0', prefixLen: 24, family: AF.INET });
    expect(parsePrefix('10.42.3.7')).toEqual({ ip: '10.42.3.7', prefixLen: 32, family: AF.INET });
    expect(parsePrefix('fd00::/64')).toEqual({ ip: 'fd00::', prefixLen: 64, family: AF.INET6 });
    for (const bad of ['10.42.3.0/33', '10.42.3.0/', '10.42.3.0/2x', '/24']) {
      expect(() => parsePrefix(bad), bad).toThrow();
    }
  });

  it('throws INVALID_ARGUMENT, never a bare TypeError', () => {
    try {
      parsePrefix('nope/8');
      expect.unreachable();
    } catch (e) {
      expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('kernel errors', () => {
  it('words an errno the way ip does, with the object and the kernel’s own text', () => {
    const e = kernelError(17, { op: 'add route', object: '10.42.3.0/24 via 10.42.3.0 dev weft.1' });
    expect(e.message).toBe('netlink: add route 10.42.3.0/24 via 10.42.3.0 dev weft.1: File exists (EEXIST)');
    expect(e.code).toBe('KERNEL');
    expect(e.details).toMatchObject({ errno: 'EEXIST', errnoNumber: 17, op: 'add route' });
    expect(isExists(e)).toBe(true);
    const x = kernelError(22, { op: 'create vxlan', object: 'weft.1' }, 'VXLAN: destination port invalid');
    expect(x.message).toBe('netlink: create vxlan weft.1: Invalid argument (EINVAL) (kernel: VXLAN: destination port invalid)');
  });

  it('names errnos, including ones without strerror text here', () => {
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoName(100000)).toBe('E100000');
    expect(kernelError(100000, { op: 'x', object: 'y' }).message).toMatch(/\(E100000\)$/);
  });

  it('classes "already gone" errnos as not found', () => {
    for (const errno of [2, 3, 19, 99]) expect(isNotFound(kernelError(errno, { op: 'delete', object: 'x' }))).toBe(true);
    expect(isNotFound(kernelError(17, { op: 'delete', object: 'x' }))).toBe(false);
    expect(isNotFound(new Error('ENOENT'))).toBe(false);
  });

  it('re-casts a Node system error from the addon', () => {
    const sys = Object.assign(new Error('setns failed'), { code: 'EINVAL', errno: 22 });
    const e = fromSystemError(sys, { op: 'open socket in netns', object: '/proc/self/ns/uts' });
    expect(e.message).toBe('netlink: open socket in netns /proc/self/ns/uts: Invalid argument (EINVAL)');
    const fsErr = Object.assign(new Error('nope'), { code: 'ENOENT', errno: -2 });
    expect(fromSystemError(fsErr, { op: 'open netns', object: '/run/netns/x' }).details.errno).toBe('ENOENT');
  });
});

describe('IPv4 fast path', () => {
  it('parses and formats every octet value as the general path does, and refuses what it refuses', async () => {
    const ipaddr = (await import('ipaddr.js')).default;
    for (let o = 0; o < 256; o++) {
      for (const ip of [`${o}.0.0.1`, `10.${o}.255.${o}`]) {
        expect(Array.from(parseIp(ip))).toEqual(ipaddr.parse(ip).toByteArray());
        expect(formatIp(parseIp(ip))).toBe(ip);
      }
    }
    for (const bad of ['1.2.3.256', '01.2.3.4', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4/24', '']) expect(() => parseIp(bad), bad).toThrow(/invalid IP address/);
    expect(formatMac(Uint8Array.from([0x02, 0, 0xab, 0x0f, 0x10, 0xff]))).toBe('02:00:ab:0f:10:ff');
  });
});
