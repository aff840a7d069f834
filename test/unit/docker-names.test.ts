// Docker container names for weft's DNS, with a fake dockerd: names and
// aliases of weft endpoints only, start/die/destroy/disconnect followed in
// order, dockerd absent at first (the watcher keeps retrying), and a resync
// after a reconnect dropping containers that went away meanwhile.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DockerApi, DockerEvent } from '../../agent/cnm/docker-api.js';
import { DockerNames, containerNames, type NameRegistry } from '../../agent/cnm/docker-names.js';
import { recordStoreNames } from '../../agent/cnm/dns-registry.js';
import { RecordStore } from '../../agent/dns/record-store.js';

const ID1 = '1'.repeat(64);
const ID2 = '2'.repeat(64);

function inspect(id: string, name: string, nets: Record<string, { EndpointID: string; IPAddress: string; Aliases?: string[] | null }>, running = true) {
  return { Id: id, Name: `/${name}`, State: { Running: running }, NetworkSettings: { Networks: nets } };
}

class FakeRegistry implements NameRegistry {
  readonly records = new Map<string, Set<string>>();
  add(name: string, ip: string, containerId: string): void {
    if (!this.records.has(containerId)) this.records.set(containerId, new Set());
    this.records.get(containerId)!.add(`${name}=${ip}`);
  }
  removeContainer(containerId: string): void {
    this.records.delete(containerId);
  }
  all(): string[] {
    return [...this.records.values()].flatMap((s) => [...s]).sort();
  }
}

class FakeDocker implements DockerApi {
  up = false;
  containers = new Map<string, unknown>();
  private emit: ((e: DockerEvent) => void) | undefined;
  private end: (() => void) | undefined;
  async get(path: string): Promise<unknown> {
    if (!this.up) throw new Error('connect ENOENT /var/run/docker.sock');
    if (path === '/containers/json') return [...this.containers.keys()].map((Id) => ({ Id }));
    const id = decodeURIComponent(path.split('/')[2]!);
    return this.containers.get(id);
  }
  events(_q: string, onEvent: (e: DockerEvent) => void, onOpen: () => void, signal: AbortSignal): Promise<void> {
    if (!this.up) return Promise.reject(new Error('connect ENOENT /var/run/docker.sock'));
    this.emit = onEvent;
    onOpen();
    return new Promise((resolve) => {
      this.end = resolve;
      signal.addEventListener('abort', () => resolve());
    });
  }
  send(e: DockerEvent): void {
    this.emit?.(e);
  }
  /** dockerd stops: the stream ends and calls fail until it is back. */
  restart(): void {
    this.up = false;
    this.end?.();
  }
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('containerNames', () => {
  it("takes the name and aliases of weft endpoints only, not the short ID, not the bridge network's address", () => {
    const c = containerNames(
      inspect(ID1, 'web', {
        net1: { EndpointID: 'ep-weft', IPAddress: '10.42.7.2', Aliases: ['www', ID1.slice(0, 12), 'web'] },
        bridge: { EndpointID: 'ep-bridge', IPAddress: '172.17.0.2', Aliases: null },
      }),
      (id) => id === 'ep-weft',
    );
    expect(c).toEqual({ containerId: ID1, running: true, names: [{ name: 'web', ip: '10.42.7.2' }, { name: 'www', ip: '10.42.7.2' }] });
    expect(containerNames('garbage', () => true)).toBeUndefined();
    expect(containerNames({ Id: ID1, NetworkSettings: { Networks: { n: { EndpointID: 'e', IPAddress: '10.42.7.2', Aliases: ['bad name!'] } } } }, () => true)?.names).toEqual([]);
  });
});

describe('DockerNames', () => {
  it('waits for dockerd, registers running containers, follows events, resyncs after dockerd restarts', async () => {
    const docker = new FakeDocker();
    const reg = new FakeRegistry();
    const weft = new Set(['ep1', 'ep2']);
    const w = new DockerNames({ api: docker, names: reg, isWeftEndpoint: (id) => weft.has(id), log: pino({ level: process.env['DBG'] ? 'debug' : 'silent' }), sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5))), retryMs: 1 });
    w.start();
    await new Promise((r) => setTimeout(r, 20));
    expect(w.connected).toBe(false);
    // dockerd comes up with one container already running.
    docker.containers.set(ID1, inspect(ID1, 'web', { net1: { EndpointID: 'ep1', IPAddress: '10.42.7.2', Aliases: ['www'] } }));
    docker.up = true;
    await until(() => reg.all().length === 2);
    expect(reg.all()).toEqual(['web=10.42.7.2', 'www=10.42.7.2']);
    // A second container starts; the first dies.
    docker.containers.set(ID2, inspect(ID2, 'db', { net1: { EndpointID: 'ep2', IPAddress: '10.42.7.3' } }));
    docker.send({ Type: 'container', Action: 'start', Actor: { ID: ID2 } });
    docker.containers.delete(ID1);
    docker.send({ Type: 'container', Action: 'die', Actor: { ID: ID1 } });
    await until(() => reg.all().join() === 'db=10.42.7.3');
    // dockerd restarts; meanwhile db went away without an event we could see.
    docker.restart();
    docker.containers.delete(ID2);
    docker.up = true;
    await until(() => reg.all().length === 0 && w.connected);
    // A network disconnect of a running container drops its weft names.
    docker.containers.set(ID1, inspect(ID1, 'web', { net1: { EndpointID: 'ep1', IPAddress: '10.42.7.2' } }));
    docker.send({ Type: 'container', Action: 'start', Actor: { ID: ID1 } });
    await until(() => reg.all().join() === 'web=10.42.7.2');
    docker.containers.set(ID1, inspect(ID1, 'web', {}));
    docker.send({ Type: 'network', Action: 'disconnect', Actor: { ID: 'net1', Attributes: { container: ID1 } } });
    await until(() => reg.all().length === 0);
    await w.stop();
  });
});

describe('recordStoreNames', () => {
  it("puts a container's names in weft's DNS store, lower case, and removes all of them by container ID", () => {
    const store = new RecordStore({ localId: '198.18.0.11' });
    const names = recordStoreNames(store, pino({ level: 'silent' }));
    names.add('Web', '10.42.7.2', ID1);
    names.add('www', '10.42.7.2', ID1);
    names.add('db', '10.42.7.3', ID2);
    names.add('not a name!', '10.42.7.3', ID2);
    expect(store.lookup('web')).toEqual(['10.42.7.2']);
    expect(store.lookup('www')).toEqual(['10.42.7.2']);
    names.removeContainer(ID1);
    expect(store.lookup('web')).toBeUndefined();
    expect(store.lookup('www')).toBeUndefined();
    expect(store.own().map((r) => r.name)).toEqual(['db']);
  });
});
