// Works out the underlay: which interface, which public IP, which MTU. The
// choice is a pure function over what the host reports (interfaces, default
// route), so it is unit-tested; reading /proc and /sys is kept in two tiny
// functions. Reading files, not spawning `ip`, keeps the agent free of tools.

import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { WeftError } from '../ipam/errors.js';

export interface Underlay {
  readonly iface: string;
  readonly publicIP: string;
}

export type InterfaceTable = Readonly<Record<string, readonly Pick<NetworkInterfaceInfo, 'address' | 'family' | 'internal'>[] | undefined>>;

/** Interface of the IPv4 default route in /proc/net/route text, if any. */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (iface !== undefined && dest === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

export function chooseUnderlay(input: {
  readonly interfaces: InterfaceTable;
  readonly defaultIface: string | undefined;
  readonly iface?: string;
  readonly publicIP?: string;
}): Underlay {
  const v4 = (name: string): string[] =>
    (input.interfaces[name] ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
  if (input.iface !== undefined) {
    if (input.interfaces[input.iface] === undefined) {
      throw new WeftError('NOT_FOUND', `--iface ${input.iface}: no such interface on this host (have: ${Object.keys(input.interfaces).join(', ')})`, { flag: 'iface' });
    }
    const addrs = v4(input.iface);
    const publicIP = input.publicIP ?? addrs[0];
    if (publicIP === undefined) {
      throw new WeftError('NOT_FOUND', `--iface ${input.iface} has no IPv4 address; give one to it or set --public-ip`, { flag: 'iface' });
    }
    return { iface: input.iface, publicIP };
  }
  if (input.publicIP !== undefined) {
    const owner = Object.keys(input.interfaces).find((n) => v4(n).includes(input.publicIP!));
    if (owner !== undefined) return { iface: owner, publicIP: input.publicIP };
    // A public IP behind NAT is not on any interface: fall back to the default route's.
    if (input.defaultIface !== undefined) return { iface: input.defaultIface, publicIP: input.publicIP };
    throw new WeftError('NOT_FOUND', `--public-ip ${input.publicIP} is on no interface and there is no default route: set --iface too`, { flag: 'public-ip' });
  }
  if (input.defaultIface === undefined) {
    throw new WeftError('NOT_FOUND', 'no default route to pick the underlay interface from: set --iface', { flag: 'iface' });
  }
  const publicIP = v4(input.defaultIface)[0];
  if (publicIP === undefined) {
    throw new WeftError('NOT_FOUND', `default-route interface ${input.defaultIface} has no IPv4 address: set --iface or --public-ip`, { flag: 'iface' });
  }
  return { iface: input.defaultIface, publicIP };
}

/** Reads this network namespace's view of the host and chooses the underlay. */
export function detectUnderlay(opts: { iface?: string; publicIP?: string }): Underlay & { mtu: number } {
  let routes = '';
  try {
    routes = readFileSync('/proc/net/route', 'utf8');
  } catch {
    // No /proc/net/route (unusual container): only explicit flags can work.
  }
  const underlay = chooseUnderlay({ interfaces: networkInterfaces(), defaultIface: defaultRouteInterface(routes), ...opts });
  return { ...underlay, mtu: interfaceMtu(underlay.iface) };
}

export function interfaceMtu(iface: string): number {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${iface}/mtu`, 'utf8').trim());
    if (Number.isInteger(mtu) && mtu > 0) return mtu;
  } catch {
    // fall through to the error below
  }
  throw new WeftError('NOT_FOUND', `cannot read the MTU of ${iface} from /sys/class/net/${iface}/mtu`, { iface });
}
