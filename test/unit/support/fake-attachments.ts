// Fakes for the attachment service's sides: state files in memory and a
// kernel that records what it was asked to do. Shared by the attachment
// service's tests and the Docker plugin's, which drive the real service.

import { WeftError } from '../../../ipam/errors.js';
import type { StateStorage } from '../../../ipam/address-pool.js';
import type { Plumber, PlumbRequest } from '../../../agent/attachments/service.js';

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

