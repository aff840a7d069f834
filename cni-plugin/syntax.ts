// Lexical rules for the strings CNI hands weft: container IDs and network
// names, Linux interface names, MAC addresses, IP addresses and CIDRs. Each
// checker returns the broken rule as text (or undefined when fine), so callers
// can collect every problem before answering instead of stopping at the first.

import { isIP } from 'node:net';

/** Spec: starts alphanumeric, then alphanumerics, `_`, `.` or `-`. Container IDs and network names share it. */
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** IFNAMSIZ is 16 bytes including the terminating NUL. */
const IFNAME_MAX_BYTES = 15;

export function identifierProblem(value: string): string | undefined {
  if (value === '') return 'empty';
  if (!IDENTIFIER.test(value)) {
    return 'must start with a letter or digit, then only letters, digits, "_", "." or "-"';
  }
  return undefined;
}

/**
 * The kernel's dev_valid_name() rules, which the spec repeats for CNI_IFNAME,
 * plus what makes a name mean something else to the kernel: `%` (a template,
 * "eth%d" picks a free number), and `all` / `default` (the names of sysctl
 * directories under /proc/sys/net/ipv4/conf).
 */
export function ifnameProblem(value: string): string | undefined {
  if (value === '') return 'empty';
  if (Buffer.byteLength(value, 'utf8') > IFNAME_MAX_BYTES) return `longer than ${IFNAME_MAX_BYTES} bytes`;
  if (value === '.' || value === '..') return 'must not be "." or ".."';
  if (value === 'all' || value === 'default') return `must not be "${value}" (a name the kernel reserves)`;
  if (/[/:%\s\0]/u.test(value)) return 'must not contain "/", ":", "%", whitespace or NUL';
  if (hasControl(value)) return 'must not contain control characters';
  return undefined;
}

/** C0 and C1 control characters and DEL: never in a name that is printed, logged or served as DNS. */
export function hasControl(value: string): boolean {
  return /[\u0000-\u001f\u007f-\u009f]/u.test(value);
}

/**
 * Returns the MAC in lower case, or undefined. Only the colon form is taken:
 * it is the one the CNI conventions show. Multicast addresses are refused
 * because the kernel refuses them on a veth, later and less clearly.
 */
export function normalizeMac(value: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) return undefined;
  const mac = value.toLowerCase();
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return undefined;
  // The kernel refuses the all-zero address on an interface (EADDRNOTAVAIL).
  if (mac === '00:00:00:00:00:00') return undefined;
  return mac;
}

/** "10.42.7.9/24" → "10.42.7.9": runtimes pass requested addresses with or without a prefix. */
export function bareAddress(address: string): string {
  return address.replace(/\/\d+$/, '');
}

export function ipFamily(value: string): 4 | 6 | undefined {
  const f = isIP(value);
  return f === 4 || f === 6 ? f : undefined;
}

/** `10.42.7.5/24`: a host address with its prefix length, as CNI results and the `ips` capability carry. */
export function cidrFamily(value: string): 4 | 6 | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) return undefined;
  const family = ipFamily(value.slice(0, slash));
  const len = value.slice(slash + 1);
  if (family === undefined || !/^(0|[1-9]\d*)$/.test(len)) return undefined;
  return Number(len) <= (family === 4 ? 32 : 128) ? family : undefined;
}
