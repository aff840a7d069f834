// Names of Docker containers on weft networks, for weft's DNS. The plugin
// protocol carries no container names, so they come from the Docker API:
// container start (and network connect, rename) → inspect → register the
// container's name and every --network-alias with its weft address; die,
// destroy → remove the container's records.
//
// dockerd may start after the agent, restart, or never run: the watcher keeps
// retrying with a capped backoff and, each time the event stream opens,
// lists the running containers again and drops records of containers that
// are gone, so nothing missed while disconnected stays wrong. Which
// endpoints are weft's is asked of the endpoint records (isWeftEndpoint), so a
// container's bridge-network addresses never reach weft's DNS.

import type { Logger } from 'pino';
import type { DockerApi, DockerEvent } from './docker-api.js';
import { backoffMs } from '../../ipam/clock.js';

/** What the DNS component offers (agent/dns); injected so the two stay apart. */
export interface NameRegistry {
  add(name: string, ip: string, containerId: string): void;
  removeContainer(containerId: string): void;
}

export interface ContainerNames {
  readonly containerId: string;
  readonly running: boolean;
  readonly names: readonly { name: string; ip: string }[];
}

const EVENTS_QUERY = `filters=${encodeURIComponent(JSON.stringify({ type: ['container', 'network'], event: ['start', 'die', 'destroy', 'connect', 'disconnect', 'rename'] }))}`;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** The names a container has on weft networks, from `GET /containers/{id}/json`. Pure. */
export function containerNames(inspect: unknown, isWeftEndpoint: (endpointId: string) => boolean): ContainerNames | undefined {
  if (inspect === null || typeof inspect !== 'object') return undefined;
  const c = inspect as { Id?: unknown; Name?: unknown; State?: { Running?: unknown }; NetworkSettings?: { Networks?: Record<string, { EndpointID?: unknown; IPAddress?: unknown; Aliases?: unknown }> | null } };
  if (typeof c.Id !== 'string') return undefined;
  const id = c.Id;
  const own = typeof c.Name === 'string' ? c.Name.replace(/^\//, '') : '';
  const names: { name: string; ip: string }[] = [];
  for (const n of Object.values(c.NetworkSettings?.Networks ?? {})) {
    if (typeof n?.EndpointID !== 'string' || typeof n.IPAddress !== 'string' || n.IPAddress === '' || !isWeftEndpoint(n.EndpointID)) continue;
    const aliases = Array.isArray(n.Aliases) ? n.Aliases.filter((a): a is string => typeof a === 'string') : [];
    // Docker adds the short container ID as an alias; it is no name a person gave.
    for (const name of new Set([own, ...aliases])) {
      if (NAME.test(name) && name !== id.slice(0, 12)) names.push({ name, ip: n.IPAddress });
    }
  }
  return { containerId: id, running: c.State?.Running === true, names };
}

export interface DockerNamesOptions {
  readonly api: DockerApi;
  readonly names: NameRegistry;
  readonly isWeftEndpoint: (endpointId: string) => boolean;
  readonly log: Logger;
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** First retry delay; doubles up to maxRetryMs. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
}

export class DockerNames {
  private readonly stop_ = new AbortController();
  /** Containers with records, so a resync removes those that vanished while we were not listening. */
  private readonly registered = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private loop: Promise<void> | undefined;
  connected = false;

  constructor(private readonly o: DockerNamesOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stop_.abort();
    await this.loop;
    await this.queue;
  }

  /** Runs the work after everything queued before it, so events apply in order. */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn).catch((e: unknown) => this.o.log.warn({ err: (e as Error).message }, 'Docker names: update failed; the next resync repairs it'));
    return this.queue;
  }

  private async run(): Promise<void> {
    const signal = this.stop_.signal;
    let attempt = 0;
    let warned = false;
    while (!signal.aborted) {
      try {
        await this.o.api.events(EVENTS_QUERY, (e) => this.onEvent(e), () => {
          this.connected = true;
          attempt = 0;
          warned = false;
          this.o.log.info('connected to dockerd: following container events for names');
          void this.enqueue(() => this.resync());
        }, signal);
        if (!signal.aborted) this.o.log.warn('dockerd closed the event stream; reconnecting');
      } catch (e) {
        if (!warned) this.o.log.info({ err: (e as Error).message }, 'dockerd not reachable; Docker container names wait for it (retrying)');
        warned = true;
      }
      this.connected = false;
      if (signal.aborted) break;
      await this.o.sleep(backoffMs(attempt++, this.o.retryMs ?? 1000, this.o.maxRetryMs ?? 10_000), signal).catch(() => undefined);
    }
  }

  private onEvent(e: DockerEvent): void {
    const id = e.Type === 'network' ? e.Actor?.Attributes?.['container'] : e.Actor?.ID;
    if (typeof id !== 'string' || id === '') return;
    if (e.Type === 'container' && (e.Action === 'die' || e.Action === 'destroy')) void this.enqueue(async () => this.forget(id));
    else void this.enqueue(() => this.refresh(id));
  }

  private forget(id: string): void {
    if (this.registered.delete(id)) this.o.names.removeContainer(id);
  }

  /** Re-registers one container's names from its current state. */
  private async refresh(id: string): Promise<void> {
    const c = containerNames(await this.o.api.get(`/containers/${encodeURIComponent(id)}/json`), this.o.isWeftEndpoint);
    this.forget(id);
    if (c === undefined || !c.running || c.names.length === 0) return;
    for (const n of c.names) this.o.names.add(n.name, n.ip, c.containerId);
    this.registered.add(c.containerId);
    this.o.log.debug({ containerId: c.containerId, names: c.names }, 'Docker names registered');
  }

  private async resync(): Promise<void> {
    const list = await this.o.api.get('/containers/json');
    const running = new Set(Array.isArray(list) ? list.map((c: { Id?: unknown }) => c?.Id).filter((x): x is string => typeof x === 'string') : []);
    for (const id of [...this.registered]) if (!running.has(id)) this.forget(id);
    for (const id of running) await this.refresh(id);
  }
}
