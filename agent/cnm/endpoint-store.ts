// What the Docker plugin must remember across agent restarts (also SIGKILL):
// the networks dockerd created on weft and every endpoint (its address, MAC,
// the attachment key its address is reserved under, the sandbox it joined and
// its published ports). Without it a restarted agent could not answer Leave or
// DeleteEndpoint for an endpoint made before, and the veth would leak.
//
// One small JSON file `<state-dir>/docker/endpoints.json`, rewritten
// atomically (fsynced) on every change and adopted in memory only after the
// write, like the address pool and the attachment records. Writes are
// serialised so two changes never race on the rename.

import { join } from 'node:path';
import { type StateStorage, fileStorage } from '../../ipam/address-pool.js';
import { WeftError } from '../../ipam/errors.js';
import { Semaphore } from '../../encap/netlink/semaphore.js';
import type { AttachmentKey } from '../attachments/validate.js';
import type { PortMapping } from './protocol.js';

export interface DockerNetwork {
  readonly networkId: string;
  /** The host subnet the network was created with ("10.42.7.0/24"). */
  readonly pool: string;
}

export interface DockerEndpoint {
  readonly endpointId: string;
  readonly networkId: string;
  /** Where the IPAM reservation and the attachment record live. */
  readonly key: AttachmentKey;
  /** "10.42.7.5/24" */
  readonly address: string;
  readonly mac: string;
  /** Set between Join and Leave. */
  readonly sandboxKey?: string;
  readonly ports?: readonly PortMapping[];
}

interface State {
  readonly version: 1;
  readonly networks: readonly DockerNetwork[];
  readonly endpoints: readonly DockerEndpoint[];
}

export function endpointsFile(stateDir: string): string {
  return join(stateDir, 'docker', 'endpoints.json');
}

export class EndpointStore {
  private readonly writes = new Semaphore(1);

  private constructor(
    private state: State,
    private readonly storage: StateStorage,
  ) {}

  static async open(storage: StateStorage): Promise<EndpointStore> {
    const text = await storage.read();
    if (text === undefined) return new EndpointStore({ version: 1, networks: [], endpoints: [] }, storage);
    let raw: Partial<State>;
    try {
      raw = JSON.parse(text) as Partial<State>;
    } catch (e) {
      throw new WeftError('INTERNAL', `Docker endpoint records ${storage.where} are corrupt: ${(e as Error).message}`, { file: storage.where });
    }
    if (raw?.version !== 1 || !Array.isArray(raw.networks) || !Array.isArray(raw.endpoints)) {
      throw new WeftError('INTERNAL', `Docker endpoint records ${storage.where} are corrupt: expected {version: 1, networks, endpoints}`, { file: storage.where });
    }
    return new EndpointStore({ version: 1, networks: raw.networks, endpoints: raw.endpoints }, storage);
  }

  static openDir(stateDir: string): Promise<EndpointStore> {
    return EndpointStore.open(fileStorage(endpointsFile(stateDir)));
  }

  network(networkId: string): DockerNetwork | undefined {
    return this.state.networks.find((n) => n.networkId === networkId);
  }

  endpoint(endpointId: string): DockerEndpoint | undefined {
    return this.state.endpoints.find((e) => e.endpointId === endpointId);
  }

  endpoints(): readonly DockerEndpoint[] {
    return this.state.endpoints;
  }

  putNetwork(n: DockerNetwork): Promise<void> {
    return this.change((s) => ({ ...s, networks: [...s.networks.filter((x) => x.networkId !== n.networkId), n] }));
  }

  deleteNetwork(networkId: string): Promise<void> {
    if (this.network(networkId) === undefined) return Promise.resolve();
    return this.change((s) => ({ ...s, networks: s.networks.filter((x) => x.networkId !== networkId) }));
  }

  putEndpoint(e: DockerEndpoint): Promise<void> {
    return this.change((s) => ({ ...s, endpoints: [...s.endpoints.filter((x) => x.endpointId !== e.endpointId), e] }));
  }

  /** Applies fn to the endpoint as it is when the write runs (no lost update between two changes). */
  updateEndpoint(endpointId: string, fn: (e: DockerEndpoint) => DockerEndpoint): Promise<void> {
    return this.change((s) => ({ ...s, endpoints: s.endpoints.map((x) => (x.endpointId === endpointId ? fn(x) : x)) }));
  }

  deleteEndpoint(endpointId: string): Promise<void> {
    if (this.endpoint(endpointId) === undefined) return Promise.resolve();
    return this.change((s) => ({ ...s, endpoints: s.endpoints.filter((x) => x.endpointId !== endpointId) }));
  }

  private change(fn: (s: State) => State): Promise<void> {
    return this.writes.run(async () => {
      const next = fn(this.state);
      await this.storage.write(JSON.stringify(next, null, 1) + '\n');
      this.state = next;
    });
  }
}
