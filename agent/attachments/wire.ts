// How the agent (agent/commands/agent.ts) starts the attachment service: one
// call that opens the host-side netlink socket, loads the address pool and
// the attachment records from the state dir, and returns the API routes to
// serve. Kept here so the daemon's wiring stays a few lines.
//
// `netnsPath` is for tests and the benchmark, which drive the service in a lab
// host's namespace from the test process; the agent runs in its host's own.

import type { Logger } from 'pino';
import { AddressPool, fileStorage, poolFile } from '../../ipam/address-pool.js';
import { openNetlink, type Netlink } from '../../encap/netlink/index.js';
import { assertForeignNetns, assertNetns, hostNamespaces, inspect, isHostIfName, netnsGone, plumb, plumbHandoff, unplumb } from '../../encap/plumb.js';
import { attachmentRoutes } from '../api/attachment-routes.js';
import type { Routes } from '../api/server.js';
import { AttachmentService, type HostNetwork, type Plumber } from './service.js';
import { AttachmentStore } from './store.js';
import type { SweepKernel } from './sweep.js';

export interface StartAttachmentsOptions {
  readonly stateDir: string;
  readonly log: Logger;
  /** The subnet held and the overlay MTU; undefined until the lease is held. */
  readonly network: () => HostNetwork | undefined;
  /** Default weft0. */
  readonly bridge?: string;
  /** The host namespace; default the agent's own. */
  readonly netnsPath?: string;
}

export interface Attachments {
  readonly routes: Routes;
  readonly service: AttachmentService;
  /** What the sweep (and `weft ps`) read from the host: namespaces and weft's veths. */
  readonly sweepKernel: SweepKernel;
  close(): void;
}

/**
 * The real kernel side of the service, over one netlink socket in the host
 * namespace (`hostNetnsPath`, default the agent's own), which no attachment
 * may target.
 */
export function netlinkPlumber(hostNetlink: Netlink, hostNetnsPath?: string): Plumber {
  const hosts = hostNamespaces(hostNetnsPath);
  return {
    assertNetns: async (path) => {
      await assertNetns(path);
      await assertForeignNetns(path, hosts);
    },
    plumb: (spec) => plumb({ ...spec, hostNetlink }),
    plumbHandoff: (spec) => plumbHandoff({ ...spec, hostNetlink }),
    unplumb: (name) => unplumb(hostNetlink, name),
    inspect: (spec) => inspect({ ...spec, hostNetlink }),
  };
}

/** The sweep's view of the host, over the same netlink socket. */
export function netlinkSweepKernel(hostNetlink: Netlink): SweepKernel {
  return {
    netnsGone,
    weftVeths: async () => new Set((await hostNetlink.listLinks()).filter((l) => l.kind === 'veth' && isHostIfName(l.name)).map((l) => l.name)),
  };
}

export async function startAttachments(o: StartAttachmentsOptions): Promise<Attachments> {
  const [pool, store] = await Promise.all([AddressPool.open(fileStorage(poolFile(o.stateDir))), AttachmentStore.openDir(o.stateDir)]);
  const hostNetlink = await openNetlink(o.netnsPath === undefined ? {} : { netnsPath: o.netnsPath });
  const service = new AttachmentService({ pool, store, plumber: netlinkPlumber(hostNetlink, o.netnsPath), network: o.network, bridge: o.bridge, log: o.log });
  o.log.info({ attachments: store.list().length, reservations: pool.list(undefined).length }, 'attachment state loaded');
  const sweepKernel = netlinkSweepKernel(hostNetlink);
  return { routes: attachmentRoutes(service, sweepKernel), service, sweepKernel, close: () => hostNetlink.close() };
}
