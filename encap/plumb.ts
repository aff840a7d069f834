// Container plumbing: one veth pair per attachment, the container end inside
// the container's network namespace (named as asked, with its address, the
// overlay MTU and a default route via the bridge's gateway address), the host
// end on the bridge `weft0`. Used by the attachment service (agent/attachments)
// for `weft attach`, CNI ADD and Docker Join alike.
//
// Why this way:
//   - The peer is created straight inside the target namespace with its final
//     name (IFLA_NET_NS_FD on the peer), so no temporary name ever shows up on
//     the host and there is no "move, then rename" window to clean up after.
//   - The host end's name is a hash of (containerId, ifname): DEL and a retried
//     ADD find it without any state, even after a crash before it was recorded.
//   - All-or-nothing: once the host end exists, any later failure deletes it
//     (which deletes its peer too), so a failed attach leaves nothing behind.
//   - Deleting the host end is all DEL needs: it works when the container's
//     namespace is already gone (its end vanished with it).
// Never spawns `ip`; everything goes through encap/netlink.

import { createHash } from 'node:crypto';
import { stat, statfs } from 'node:fs/promises';
import { WeftError, isWeftError } from '../ipam/errors.js';
import { type Netlink, isExists, isNotFound, openNetlink } from './netlink/index.js';

/** statfs f_type of nsfs: what /run/netns/NAME and /proc/PID/ns/net resolve to. */
const NSFS_MAGIC = 0x6e736673;
const DEFAULT_ROUTE = '0.0.0.0/0';

/** The host end's name: `vw` + 12 hex of a hash of the key, 14 chars (IFNAMSIZ allows 15). */
export function hostIfNameFor(containerId: string, ifname: string): string {
  return `vw${createHash('sha256').update(`${containerId}\0${ifname}`).digest('hex').slice(0, 12)}`;
}

const HOST_IF_NAME = /^vw[0-9a-f]{12}$/;

/** Whether a link name is one hostIfNameFor makes: the only links the agent's sweep may delete. */
export function isHostIfName(name: string): boolean {
  return HOST_IF_NAME.test(name);
}

/** Fails with NOT_FOUND / INVALID_ARGUMENT unless `path` is a network namespace. */
export async function assertNetns(path: string): Promise<void> {
  let type: number;
  try {
    type = (await statfs(path)).type;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new WeftError('NOT_FOUND', `network namespace ${path} does not exist`, { field: 'netns', netns: path });
    }
    throw new WeftError('INVALID_ARGUMENT', `network namespace ${path} cannot be opened: ${(e as Error).message}`, { field: 'netns', netns: path });
  }
  if (type !== NSFS_MAGIC) {
    throw new WeftError('INVALID_ARGUMENT', `${path} is not a network namespace (not an nsfs mount)`, { field: 'netns', netns: path });
  }
}

/**
 * Gone: missing (a dead pid's /proc/PID/ns/net, a deleted /run/netns file) or not nsfs (an
 * unmounted bind-mount target, podman's empty placeholder). Any other error (EACCES, …) says
 * nothing about the namespace, so it counts as alive: the sweep never frees on a doubt.
 */
export async function netnsGone(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type !== NSFS_MAGIC;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ESRCH';
  }
}

/** The namespaces no container may be attached into: the host's own (where weft0 is) and PID 1's. */
export function hostNamespaces(hostNetnsPath = '/proc/self/ns/net'): string[] {
  return [hostNetnsPath, '/proc/1/ns/net'];
}

/**
 * Refuses a target that is one of `hosts` (same nsfs inode and device, the
 * identity of a namespace whatever path names it): attaching "a container"
 * there would give the host a veth, an address and a second default route.
 */
export async function assertForeignNetns(path: string, hosts: readonly string[]): Promise<void> {
  const target = await stat(path, { bigint: true });
  for (const h of hosts) {
    const host = await stat(h, { bigint: true }).catch(() => undefined);
    if (host !== undefined && host.ino === target.ino && host.dev === target.dev) {
      throw new WeftError(
        'INVALID_ARGUMENT',
        `netns: ${path} is the host's own network namespace (the same as ${h}); weft attaches containers, never the host: give the container's namespace`,
        { field: 'netns', netns: path },
      );
    }
  }
}

export interface PlumbSpec {
  /** Netlink in the host's namespace (where the bridge lives). */
  readonly hostNetlink: Netlink;
  readonly netnsPath: string;
  /** The container end's name inside the namespace, e.g. eth0. */
  readonly ifname: string;
  readonly address: { readonly ip: string; readonly prefixLen: number };
  readonly gateway: string;
  readonly mtu: number;
  readonly mac?: string;
  readonly bridge: string;
  readonly hostIfName: string;
  /** For inspect: whether this interface carries the namespace's default route (default true). */
  readonly defaultRoute?: boolean;
}

export interface Plumbed {
  /** The container end's MAC (the one asked for, or the kernel's random one). */
  readonly mac: string;
  /**
   * False when the namespace already had a default route (a second interface
   * of the same container): the interface gets its address and subnet route,
   * and the first interface keeps the way out.
   */
  readonly defaultRoute: boolean;
}

/** Prefixes a failure with what was being attached, keeping its code and details. */
function during(spec: Pick<PlumbSpec, 'ifname' | 'netnsPath'>, e: unknown): WeftError {
  const what = `attach ${spec.ifname} in ${spec.netnsPath}`;
  if (isWeftError(e)) return new WeftError(e.code, `${what}: ${e.message}`, { ...e.details });
  return new WeftError('INTERNAL', `${what}: ${(e as Error).message ?? String(e)}`);
}

async function inNetns<T>(netnsPath: string, fn: (nl: Netlink) => Promise<T>): Promise<T> {
  const nl = await openNetlink({ netnsPath });
  try {
    return await fn(nl);
  } finally {
    nl.close();
  }
}

async function requireBridge(host: Netlink, bridge: string): Promise<void> {
  if ((await host.getLink(bridge)) === undefined) {
    throw new WeftError('UNAVAILABLE', `bridge ${bridge} does not exist yet: the data plane is not up; try again`, { bridge });
  }
}

/** Creates and configures the pair; all-or-nothing (see the header). */
export async function plumb(spec: PlumbSpec): Promise<Plumbed> {
  const { hostNetlink: host, ifname, hostIfName } = spec;
  await assertNetns(spec.netnsPath);
  await requireBridge(host, spec.bridge);
  try {
    await host.createVeth({ name: hostIfName, mtu: spec.mtu, peerName: ifname, peerNetns: { path: spec.netnsPath }, peerMtu: spec.mtu, peerMac: spec.mac });
  } catch (e) {
    // Nothing of ours exists yet (EEXIST means someone else's link): nothing to undo. The service deleted
    // any leftover host end of this key first, so EEXIST is the caller's name taken in the container.
    if (isExists(e)) {
      throw new WeftError('CONFLICT', `attach ${ifname} in ${spec.netnsPath}: an interface named ${ifname} (or a host link ${hostIfName}) already exists (File exists): choose another interface name or remove it`, { field: 'ifname', ifname });
    }
    throw during(spec, e);
  }
  try {
    const [{ mac, defaultRoute }] = await settleAll([
      inNetns(spec.netnsPath, async (nl) => {
        await nl.addAddress(ifname, `${spec.address.ip}/${spec.address.prefixLen}`);
        await nl.setUp(ifname);
        await nl.setUp('lo');
        let defaultRoute = true;
        try {
          await nl.addRoute({ dst: DEFAULT_ROUTE, gateway: spec.gateway, dev: ifname });
        } catch (e) {
          if (!isExists(e)) throw e;
          defaultRoute = false;
        }
        const link = await nl.getLink(ifname);
        if (link?.mac === undefined) throw new WeftError('KERNEL', `${ifname} vanished from ${spec.netnsPath} while being configured`);
        return { mac: link.mac, defaultRoute };
      }),
      (async () => {
        await host.setMaster(hostIfName, spec.bridge);
        await host.setUp(hostIfName);
      })(),
    ]);
    return { mac, defaultRoute };
  } catch (e) {
    await unplumb(host, hostIfName).catch(() => undefined);
    throw during(spec, e);
  }
}

export interface HandoffSpec {
  readonly hostNetlink: Netlink;
  readonly hostIfName: string;
  /** The container end's name, left in the host namespace for the runtime to move (Docker's Join SrcName). */
  readonly peerName: string;
  readonly mtu: number;
  readonly mac?: string;
  readonly bridge: string;
}

/** The handoff end's name: `vp` + the same hash as the host end, so it is found again without state. */
export function handoffIfNameFor(hostIfName: string): string {
  return `vp${hostIfName.slice(2)}`;
}

/**
 * A pair whose container end stays in the host namespace, unconfigured: Docker's
 * remote driver protocol has the runtime move it into the sandbox and set its
 * address, MAC and routes itself. All-or-nothing like plumb().
 */
export async function plumbHandoff(spec: HandoffSpec): Promise<Plumbed> {
  const { hostNetlink: host, hostIfName, peerName } = spec;
  await requireBridge(host, spec.bridge);
  const what = (e: unknown): WeftError => during({ ifname: peerName, netnsPath: 'the host namespace' }, e);
  try {
    await host.createVeth({ name: hostIfName, mtu: spec.mtu, peerName, peerMtu: spec.mtu, peerMac: spec.mac });
  } catch (e) {
    throw what(e);
  }
  try {
    await host.setMaster(hostIfName, spec.bridge);
    await host.setUp(hostIfName);
    const peer = await host.getLink(peerName);
    if (peer?.mac === undefined) throw new WeftError('KERNEL', `${peerName} vanished while being configured`);
    // The runtime adds the default route via the gateway it is given (Docker's Join reply).
    return { mac: peer.mac, defaultRoute: true };
  } catch (e) {
    await unplumb(host, hostIfName).catch(() => undefined);
    throw what(e);
  }
}

/** Promise.all that waits for every branch before rejecting, so the rollback never races a branch still at work. */
async function settleAll<A, B>(ps: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled(ps);
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

/** Deletes the host end (its peer goes with it). Idempotent: false when it was not there. */
export async function unplumb(hostNetlink: Netlink, hostIfName: string): Promise<boolean> {
  try {
    await hostNetlink.deleteLink(hostIfName);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** For CHECK: what of the attachment is missing or wrong (empty when intact). */
export async function inspect(spec: Omit<PlumbSpec, 'mac' | 'mtu'> & { mtu?: number }): Promise<string[]> {
  const missing: string[] = [];
  const { hostNetlink: host, ifname, hostIfName } = spec;
  const hostEnd = await host.getLink(hostIfName);
  const bridge = await host.getLink(spec.bridge);
  if (hostEnd === undefined) missing.push(`host end ${hostIfName}`);
  else {
    if (bridge === undefined || hostEnd.masterIndex !== bridge.index) missing.push(`${hostIfName} on bridge ${spec.bridge}`);
    if (!hostEnd.up) missing.push(`${hostIfName} up`);
  }
  try {
    await assertNetns(spec.netnsPath);
  } catch {
    return [...missing, `network namespace ${spec.netnsPath}`];
  }
  const cidr = `${spec.address.ip}/${spec.address.prefixLen}`;
  await inNetns(spec.netnsPath, async (nl) => {
    const link = await nl.getLink(ifname);
    if (link === undefined) {
      missing.push(`interface ${ifname}`);
      return;
    }
    if (!link.up) missing.push(`${ifname} up`);
    if (spec.mtu !== undefined && link.mtu !== spec.mtu) missing.push(`${ifname} mtu ${spec.mtu} (is ${link.mtu})`);
    const addrs = await nl.listAddresses(link.index);
    if (!addrs.some((a) => `${a.address}/${a.prefixLen}` === cidr)) missing.push(`address ${cidr} on ${ifname}`);
    const routes = spec.defaultRoute === false ? [] : await nl.listRoutes();
    if (spec.defaultRoute !== false && !routes.some((r) => r.dst === DEFAULT_ROUTE && r.gateway === spec.gateway && r.dev === link.index)) {
      missing.push(`default route via ${spec.gateway} dev ${ifname}`);
    }
  });
  return missing;
}
