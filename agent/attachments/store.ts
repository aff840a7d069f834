// The attachment records: what `weft ps` lists and CHECK compares against,
// kept in `<state-dir>/attachments/attachments.json` so they survive agent
// restarts. One small JSON file rewritten atomically on each change (the same
// reasoning as the address pool's file); writes are serialised so two changes
// never race on the rename. The address pool, not this file, is the authority
// on which address is taken: a record is written after the plumbing succeeded
// and removed after the address was released.

import { join } from 'node:path';
import { type StateStorage, fileStorage } from '../../ipam/address-pool.js';
import { WeftError } from '../../ipam/errors.js';
import { Semaphore } from '../../encap/netlink/semaphore.js';
import type { Attachment } from '../api/types.js';
import type { AttachmentKey } from './validate.js';

export function attachmentsFile(stateDir: string): string {
  return join(stateDir, 'attachments', 'attachments.json');
}

export function keyString(k: AttachmentKey): string {
  return `${k.containerId}/${k.ifname}`;
}

export class AttachmentStore {
  private readonly writes = new Semaphore(1);

  private constructor(
    private readonly records: Map<string, Attachment>,
    private readonly storage: StateStorage,
  ) {}

  static async open(storage: StateStorage): Promise<AttachmentStore> {
    const text = await storage.read();
    const records = new Map<string, Attachment>();
    if (text !== undefined) {
      let list: unknown;
      try {
        list = (JSON.parse(text) as { attachments?: unknown }).attachments;
      } catch (e) {
        throw new WeftError('INTERNAL', `attachment records ${storage.where} are corrupt: ${(e as Error).message}`, { file: storage.where });
      }
      if (!Array.isArray(list)) throw new WeftError('INTERNAL', `attachment records ${storage.where} are corrupt: no "attachments" list`, { file: storage.where });
      for (const a of list as Attachment[]) records.set(keyString(a), a);
    }
    return new AttachmentStore(records, storage);
  }

  static openDir(stateDir: string): Promise<AttachmentStore> {
    return AttachmentStore.open(fileStorage(attachmentsFile(stateDir)));
  }

  get(k: AttachmentKey): Attachment | undefined {
    return this.records.get(keyString(k));
  }

  list(): Attachment[] {
    return [...this.records.values()];
  }

  put(a: Attachment): Promise<void> {
    return this.change((m) => m.set(keyString(a), a));
  }

  delete(k: AttachmentKey): Promise<void> {
    if (!this.records.has(keyString(k))) return Promise.resolve();
    return this.change((m) => m.delete(keyString(k)));
  }

  /** Applies the change to a copy, writes it, and only then adopts it. */
  private change(fn: (m: Map<string, Attachment>) => void): Promise<void> {
    return this.writes.run(async () => {
      const next = new Map(this.records);
      fn(next);
      await this.storage.write(JSON.stringify({ version: 1, attachments: [...next.values()] }, null, 1) + '\n');
      this.records.clear();
      for (const [k, v] of next) this.records.set(k, v);
    });
  }
}
