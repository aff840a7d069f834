// The records an operator added by hand (`weft dns add NAME IP`), kept in
// `<state-dir>/dns/static.json` so that a restarted agent re-announces them as
// it re-announces its containers' names. Validation is here too, so the API
// refuses a bad name or address before anything is stored.

import { join } from 'node:path';
import { WeftError } from '../../ipam/errors.js';
import { fileStorage, type StateStorage } from '../../ipam/address-pool.js';
import { canonicalIp } from './dns-answer.js';
import { parseRecordName } from './names.js';
import { Semaphore } from '../../encap/netlink/semaphore.js';

export interface StaticRecord {
  readonly name: string;
  readonly address: string;
}

export function staticFile(stateDir: string): string {
  return join(stateDir, 'dns', 'static.json');
}

export function parseAddress(raw: unknown, field = 'ip'): string {
  const ip = typeof raw === 'string' ? canonicalIp(raw) : undefined;
  if (ip === undefined) throw new WeftError('INVALID_ARGUMENT', `${field}: ${JSON.stringify(raw)} is not an IPv4 or IPv6 address`, { field });
  return ip;
}

/** `{name, ip}` of `POST /v1/dns/add` (ip required) or `/v1/dns/rm` (ip optional). */
export function parseStaticRequest(body: unknown, ipRequired: boolean): { name: string; address?: string } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new WeftError('INVALID_ARGUMENT', 'request body must be a JSON object with "name" and "ip"');
  const o = body as Record<string, unknown>;
  const name = parseRecordName(o['name']);
  if (o['ip'] === undefined || o['ip'] === null) {
    if (ipRequired) throw new WeftError('INVALID_ARGUMENT', 'ip: is required (weft dns add NAME IP)', { field: 'ip' });
    return { name };
  }
  return { name, address: parseAddress(o['ip']) };
}

export class StaticRecords {
  private readonly writes = new Semaphore(1);

  private constructor(
    private list: StaticRecord[],
    private readonly storage: StateStorage,
  ) {}

  static async open(stateDir: string, storage: StateStorage = fileStorage(staticFile(stateDir))): Promise<StaticRecords> {
    const text = await storage.read();
    let list: StaticRecord[] = [];
    if (text !== undefined) {
      try {
        const parsed = (JSON.parse(text) as { records?: unknown }).records;
        if (!Array.isArray(parsed)) throw new Error('no "records" list');
        list = parsed.map((r: { name?: unknown; address?: unknown }) => ({ name: parseRecordName(r.name), address: parseAddress(r.address) }));
      } catch (e) {
        throw new WeftError('INTERNAL', `static DNS records ${storage.where} are corrupt (${(e as Error).message}); fix or delete the file`, { file: storage.where });
      }
    }
    return new StaticRecords(list, storage);
  }

  all(): readonly StaticRecord[] {
    return this.list;
  }

  add(r: StaticRecord): Promise<void> {
    return this.writes.run(async () => {
      if (this.list.some((x) => x.name === r.name && x.address === r.address)) return;
      await this.save([...this.list, r]);
    });
  }

  /** Removes NAME's records (only ADDRESS's when given); returns those removed. */
  remove(name: string, address?: string): Promise<StaticRecord[]> {
    return this.writes.run(async () => {
      const gone = this.list.filter((x) => x.name === name && (address === undefined || x.address === address));
      if (gone.length > 0) await this.save(this.list.filter((x) => !gone.includes(x)));
      return gone;
    });
  }

  /** Callers hold `writes`: each change starts from the list the previous one wrote (two adds at once keep both). */
  private async save(next: StaticRecord[]): Promise<void> {
    await this.storage.write(JSON.stringify({ version: 1, records: next }, null, 1) + '\n');
    this.list = next;
  }
}
