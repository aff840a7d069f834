// The attachment service over a fake kernel, for unit tests: the real pool and
// store over in-memory storage, a plumber that records what it was asked to do
// and keeps a set of "links", and an event log showing the order of writes.

import { pino } from 'pino';
import { AddressPool, type StateStorage } from '../../../ipam/address-pool.js';
import { parseCidr } from '../../../ipam/cidr.js';
import { WeftError } from '../../../ipam/errors.js';
import { AttachmentService, type HostNetwork, type Plumber, type PlumbRequest } from '../../../agent/attachments/service.js';
import { AttachmentStore } from '../../../agent/attachments/store.js';

export const NET: HostNetwork = { subnet: parseCidr('10.42.7.0/24'), mtu: 1450 };
export const NS = '/run/netns/c1';

export function mem(): StateStorage {
  let text: string | undefined;
  return { where: 'mem', read: async () => text, write: async (t) => void (text = t) };
}

export class FakePlumber implements Plumber {
  constructor(readonly events: string[]) {}
  readonly links = new Set<string>();
  readonly routed = new Set<string>();
  failPlumb: Error | undefined;
  missingNetns = new Set<string>();
  async assertNetns(path: string): Promise<void> {
    if (this.missingNetns.has(path)) throw new WeftError('NOT_FOUND', `network namespace ${path} does not exist`);
  }
  async plumb(spec: PlumbRequest) {
    this.events.push(`plumb ${spec.hostIfName} ${spec.address.ip}/${spec.address.prefixLen} gw ${spec.gateway} mtu ${spec.mtu}`);
    if (this.failPlumb) throw this.failPlumb;
    this.links.add(spec.hostIfName);
    // Like the kernel: only the first interface of a namespace can add the default route.
    const defaultRoute = !this.routed.has(spec.netnsPath);
    this.routed.add(spec.netnsPath);
    return { mac: spec.mac ?? '02:00:00:00:00:01', defaultRoute };
  }
  async plumbHandoff(spec: { hostIfName: string; peerName: string; mtu: number; mac?: string }) {
    this.events.push(`handoff ${spec.hostIfName} ${spec.peerName} mtu ${spec.mtu}`);
    if (this.failPlumb) throw this.failPlumb;
    this.links.add(spec.hostIfName);
    return { mac: spec.mac ?? '02:00:00:00:00:02', defaultRoute: true };
  }
  async unplumb(name: string) {
    this.events.push(`unplumb ${name}`);
    return this.links.delete(name);
  }
  async inspect(spec: Omit<PlumbRequest, 'mac'>) {
    return this.links.has(spec.hostIfName) ? [] : [`host end ${spec.hostIfName}`];
  }
}

export async function setup(now?: () => Date) {
  const poolStorage = mem();
  const events: string[] = [];
  const write = poolStorage.write;
  poolStorage.write = async (t) => {
    events.push(`pool write ${(JSON.parse(t) as { reservations: unknown[] }).reservations.length}`);
    await write(t);
  };
  const pool = await AddressPool.open(poolStorage, now);
  const store = await AttachmentStore.open(mem());
  const plumber = new FakePlumber(events);
  let net: HostNetwork | undefined = NET;
  const service = new AttachmentService({ pool, store, plumber, network: () => net, log: pino({ level: 'silent' }), ...(now ? { now } : {}) });
  return { service, pool, store, plumber, events, setNetwork: (n: HostNetwork | undefined) => (net = n) };
}

