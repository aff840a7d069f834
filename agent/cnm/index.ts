// The Docker front door as one component (start/stop): the endpoint records,
// the published-ports table re-applied from them, the NetworkDriver and
// IpamDriver on `--cnm-socket`, and the watcher that feeds Docker container
// names to weft's DNS. It serves once the node is ready (a socket that
// answers before the lease is held would only fail every call) and stopping
// it removes the socket.

import type { Logger } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { dockerSocketApi, type DockerApi } from './docker-api.js';
import { DockerNames, type NameRegistry } from './docker-names.js';
import { EndpointStore } from './endpoint-store.js';
import { type AttachmentDoor, DOCKER_KEY_PREFIX, ipamDriver } from './ipam-driver.js';
import { networkDriver } from './network-driver.js';
import { nftPortPublisher, type PortPublisher } from './port-rules.js';
import { pluginHandlers, startPluginServer } from './server.js';

export type { NameRegistry } from './docker-names.js';

export const DEFAULT_CNM_SOCKET = '/run/docker/plugins/weft.sock';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export interface CnmOptions {
  readonly socketPath: string;
  readonly stateDir: string;
  /** The shared attachment service (available once the attachments component started). */
  readonly attachments: () => AttachmentDoor;
  /** Readiness: the socket is served once nothing is missing. */
  readonly state: Pick<NodeState, 'subscribe' | 'notReady' | 'addStatus'>;
  /** Reports a failure to serve (the agent stops), as components do for background work. */
  readonly fail: (e: unknown) => void;
  readonly log: Logger;
  /** Where names go (the DNS component); without one, names are not read from Docker. */
  readonly names?: NameRegistry;
  /** Docker Engine API socket, read for container names. */
  readonly dockerSocket?: string;
  readonly dockerApi?: DockerApi;
  readonly ports?: PortPublisher;
}

export class CnmComponent implements Component {
  readonly name = 'docker-plugin';
  private server: { close(): Promise<void> } | undefined;
  private watcher: DockerNames | undefined;
  private unsubscribe: (() => void) | undefined;
  private serving: Promise<void> | undefined;
  private store: EndpointStore | undefined;

  constructor(private readonly o: CnmOptions) {}

  async start(): Promise<void> {
    // Docker's keys hold addresses without records (IPAM) and sandbox paths in dockerd's mount namespace:
    // the sweep and CNI GC leave them to dockerd (see AttachmentService.runtimeManaged).
    this.o.attachments().runtimeManaged(DOCKER_KEY_PREFIX);
    this.o.state.addStatus('docker', () => ({
      socket: this.o.socketPath,
      serving: this.server !== undefined,
      endpoints: this.store?.endpoints().length ?? 0,
      ...(this.watcher ? { dockerApi: this.watcher.connected ? 'connected' : 'waiting for dockerd' } : {}),
    }));
    const tryServe = (): void => {
      if (this.serving !== undefined || this.o.state.notReady().length > 0) return;
      this.unsubscribe?.();
      this.serving = this.serve().catch(this.o.fail);
    };
    this.unsubscribe = this.o.state.subscribe(tryServe);
    tryServe();
  }

  private async serve(): Promise<void> {
    const store = await EndpointStore.openDir(this.o.stateDir);
    this.store = store;
    const att = this.o.attachments();
    const ports = this.o.ports ?? nftPortPublisher();
    // Rules survive an agent restart in the kernel; applying them again makes them exactly what the records say.
    if (store.endpoints().some((e) => (e.ports?.length ?? 0) > 0)) await ports.apply(store.endpoints());
    const boundToEndpoint = (containerId: string): boolean => store.endpoints().some((e) => e.key.containerId === containerId);
    const handlers = pluginHandlers(ipamDriver(att, { boundToEndpoint }), networkDriver({ attachments: att, store, ports, log: this.o.log }));
    this.o.log.info({ endpoints: store.endpoints().length }, 'Docker endpoint records loaded');
    this.server = await startPluginServer(this.o.socketPath, handlers, this.o.log);
    if (this.o.names !== undefined) {
      const api = this.o.dockerApi ?? dockerSocketApi(this.o.dockerSocket ?? DEFAULT_DOCKER_SOCKET);
      this.watcher = new DockerNames({
        api,
        names: this.o.names,
        isWeftEndpoint: (id) => store.endpoint(id) !== undefined,
        log: this.o.log,
        sleep: (ms, signal) => systemClock.sleep(ms, signal),
      });
      this.watcher.start();
    }
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.serving;
    await this.watcher?.stop();
    await this.server?.close();
  }
}
