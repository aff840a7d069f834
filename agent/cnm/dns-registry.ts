// Docker container names into weft's DNS: the NameRegistry the Docker name
// watcher (./docker-names) writes to, over the DNS record store. Attachments
// of CNI and `weft attach` carry their names, so the DNS component registers
// them from attachment events; Docker's Join carries none, so the names come
// from the Docker API and enter the store here, under the Docker container ID.

import type { Logger } from 'pino';
import { nameProblem } from '../dns/names.js';
import type { RecordStore } from '../dns/record-store.js';
import type { NameRegistry } from './docker-names.js';

export function recordStoreNames(store: Pick<RecordStore, 'add' | 'remove' | 'own'>, log: Logger): NameRegistry {
  return {
    add(name, ip, containerId) {
      const n = name.toLowerCase();
      const problem = nameProblem(n);
      if (problem !== undefined) {
        log.warn({ containerId, name, problem }, 'Docker container name is not a valid DNS name; not registered');
        return;
      }
      store.add(n, ip, containerId);
    },
    removeContainer(containerId) {
      for (const r of store.own().filter((x) => x.containerId === containerId)) store.remove(r.name, r.address, containerId);
    },
  };
}
