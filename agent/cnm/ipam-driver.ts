// Docker's IpamDriver over weft's address pool. On each host a weft network's
// pool is that host's leased subnet and its gateway is the bridge's address;
// container addresses come from the same pool as CNI's and `weft attach`'s,
// so no two containers of a host ever share one, whoever started them.
//
// The pool weft answers to a RequestPool without --subnet is 0.0.0.0/0, not
// the host subnet (Calico's plugin does the same): for a local-scope network
// libnetwork refuses a driver-chosen pool that overlaps a route of the host
// and asks again, forever, and weft0 routes the host subnet. libnetwork skips
// that check for 0.0.0.0/0 and for a pool the user asked for, so
// `--subnet <the host subnet>` is accepted as well. Either way every address
// (and the gateway) is handed out with the host subnet's mask, which is what
// the container's interface gets.
//
// RequestAddress does not say which endpoint it is for, so each address is
// reserved under a key of its own (`docker-<random>`/eth0); CreateEndpoint
// finds the key again by the address and the attachment made in Join uses the
// same key, which is how the pool sees one reservation from RequestAddress to
// ReleaseAddress.

import { randomBytes } from 'node:crypto';
import { cidrContains, cidrEquals, formatCidr, parseCidr, parseIp } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import type { Reservation } from '../../ipam/address-pool.js';
import type { AttachmentService } from '../attachments/service.js';
import type { AttachmentKey } from '../attachments/validate.js';
import { ADDRESS_SPACE, asObject, parseReleaseAddress, parseRequestAddress, parseRequestPool, required } from './protocol.js';

/** What the Docker plugin uses of the attachment service (a fake in unit tests). */
export type AttachmentDoor = Pick<AttachmentService, 'attach' | 'detach' | 'hostNetwork' | 'reserve' | 'release' | 'reservations' | 'runtimeManaged'>;

/** Reservations made for Docker carry this prefix, so they are told apart from CNI's and `weft attach`'s. */
export const DOCKER_KEY_PREFIX = 'docker-';
export const DOCKER_IFNAME = 'eth0';

/** What libnetwork's overlap check leaves alone (types.IsIPNetValid). */
export const UNCONSTRAINED_POOL = '0.0.0.0/0';

export function poolIdOf(subnet: string): string {
  return `${ADDRESS_SPACE}:${subnet}`;
}

/** The Docker reservation holding `ip`, if any. */
export function dockerReservation(list: readonly Reservation[], ip: string): Reservation | undefined {
  return list.find((r) => r.ip === ip && r.containerId.startsWith(DOCKER_KEY_PREFIX));
}

function bareIp(text: string, field: string): string {
  const ip = text.replace(/\/\d+$/, '');
  try {
    parseIp(ip);
  } catch {
    throw new WeftError('INVALID_ARGUMENT', `${field}: "${text.slice(0, 80)}" is not an IPv4 address`, { field });
  }
  return ip;
}

export type Handlers = Readonly<Record<string, (body: unknown) => Promise<unknown>>>;

export interface IpamDriverOptions {
  /** A fresh reservation key (random by default; tests make them predictable). */
  readonly newKey?: () => AttachmentKey;
  /** Whether a live Docker endpoint holds this reservation key (from the endpoint records). */
  readonly boundToEndpoint?: (containerId: string) => boolean;
}

export function ipamDriver(att: AttachmentDoor, opts: IpamDriverOptions = {}): Handlers {
  const newKey = opts.newKey ?? (() => ({ containerId: `${DOCKER_KEY_PREFIX}${randomBytes(8).toString('hex')}`, ifname: DOCKER_IFNAME }));
  /** The current pool; a PoolID of an earlier subnet (the lease changed) is refused. */
  const current = (poolId?: string) => {
    const net = att.hostNetwork();
    const subnet = formatCidr(net.subnet);
    if (poolId !== undefined && poolId !== poolIdOf(subnet)) {
      throw new WeftError('NOT_FOUND', `pool ${poolId} is not this host's weft subnet (${subnet}); the host's lease changed: remove the network and create it again`, { poolId, subnet });
    }
    return { ...net, text: subnet };
  };

  return {
    'IpamDriver.GetCapabilities': async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': async () => ({ LocalDefaultAddressSpace: ADDRESS_SPACE, GlobalDefaultAddressSpace: ADDRESS_SPACE }),

    'IpamDriver.RequestPool': async (body) => {
      const req = parseRequestPool(body);
      if (req.v6) throw new WeftError('INVALID_ARGUMENT', 'weft gives IPv4 addresses only: create the network without --ipv6');
      const net = current();
      if (req.pool !== undefined && req.pool !== net.text) {
        let same = false;
        try {
          same = cidrEquals(parseCidr(req.pool), net.subnet);
        } catch {
          /* not a CIDR: refused below */
        }
        if (!same) {
          throw new WeftError('INVALID_ARGUMENT', `subnet ${req.pool} cannot be used: on this host a weft network's subnet is the host's lease ${net.text} (weft gives every host its own subnet of the overlay); create the network without --subnet`, { pool: req.pool, subnet: net.text });
        }
      }
      if (req.subPool !== undefined) {
        throw new WeftError('INVALID_ARGUMENT', `--ip-range ${req.subPool} is not supported: weft hands out addresses of the whole host subnet ${net.text}; create the network without --ip-range`);
      }
      return { PoolID: poolIdOf(net.text), Pool: req.pool === undefined ? UNCONSTRAINED_POOL : net.text, Data: {} };
    },

    'IpamDriver.ReleasePool': async (body) => {
      required(asObject(body, 'ReleasePool'), 'PoolID');
      return {};
    },

    'IpamDriver.RequestAddress': async (body) => {
      const req = parseRequestAddress(body);
      const net = current(req.poolId);
      const asked = req.address === undefined ? undefined : bareIp(req.address, 'Address');
      if (req.gateway || asked === net.gateway) {
        if (asked !== undefined && asked !== net.gateway) {
          throw new WeftError('INVALID_ARGUMENT', `gateway ${asked} cannot be used: the gateway of ${net.text} is the bridge's address ${net.gateway}; create the network without --gateway`);
        }
        return { Address: `${net.gateway}/${net.subnet.len}`, Data: {} };
      }
      if (asked !== undefined && !cidrContains(net.subnet, parseIp(asked))) {
        throw new WeftError('INVALID_ARGUMENT', `address ${asked} is outside this host's weft subnet ${net.text}; on this host, --ip must be in ${net.text}`);
      }
      const r = await att.reserve(newKey(), asked);
      return { Address: `${r.ip}/${net.subnet.len}`, Data: {} };
    },

    'IpamDriver.ReleaseAddress': async (body) => {
      const req = parseReleaseAddress(body);
      const ip = bareIp(req.address, 'Address');
      const held = dockerReservation(att.reservations(), ip);
      // dockerd releases an address after DeleteEndpoint. A reservation still bound to a live endpoint is
      // a newer container's, which got the address after it was freed early (the sweep frees the address
      // of a container whose namespace is gone): releasing it would hand that address out twice.
      if (held !== undefined && opts.boundToEndpoint?.(held.containerId) !== true) await att.release(held);
      return {};
    },
  };
}
