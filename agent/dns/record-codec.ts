// The bytes that gossip carries for DNS: a JSON list of entries, each
// [name, address, owner, containerId, version, deleted(0|1)]. Used for both the
// full state (push-pull over TCP) and the small broadcast messages (a few
// entries, kept under gossip's ~1 KB). Gossip authenticates every message, but
// a peer can still be buggy: decoding checks every field and skips (counts) an
// entry it cannot use rather than failing the whole state.

import { isIP } from 'node:net';
import type { DnsRecord } from './record-set.js';
import { nameProblem } from './names.js';

const FORMAT = 1;
/** A broadcast stays below this many bytes; gossip piggybacks it on probes. */
export const MAX_MESSAGE_BYTES = 900;

type Wire = [string, string, string, string, number, 0 | 1];

function toWire(r: DnsRecord): Wire {
  return [r.name, r.address, r.owner, r.containerId, r.version, r.deleted ? 1 : 0];
}

export function encodeRecords(records: readonly DnsRecord[]): Uint8Array {
  return Buffer.from(JSON.stringify({ v: FORMAT, r: records.map(toWire) }), 'utf8');
}

/** Packs entries into as few messages as fit MAX_MESSAGE_BYTES each (an entry is at most ~500 bytes). */
export function encodeMessages(records: readonly DnsRecord[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let batch: DnsRecord[] = [];
  for (const r of records) {
    const next = [...batch, r];
    if (batch.length > 0 && encodeRecords(next).length > MAX_MESSAGE_BYTES) {
      out.push(encodeRecords(batch));
      batch = [r];
    } else {
      batch = next;
    }
  }
  if (batch.length > 0) out.push(encodeRecords(batch));
  return out;
}

export interface Decoded {
  readonly records: DnsRecord[];
  /** Entries skipped as malformed (or the whole input, counted as 1, when it is not our format). */
  readonly rejected: number;
}

function decodeEntry(e: unknown): DnsRecord | undefined {
  if (!Array.isArray(e) || e.length !== 6) return undefined;
  const [name, address, owner, containerId, version, deleted] = e as unknown[];
  if (typeof name !== 'string' || nameProblem(name) !== undefined) return undefined;
  if (typeof address !== 'string' || isIP(address) === 0) return undefined;
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > 64) return undefined;
  if (typeof containerId !== 'string' || containerId.length === 0 || containerId.length > 256) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version <= 0) return undefined;
  if (deleted !== 0 && deleted !== 1) return undefined;
  return { name, address, owner, containerId, version, deleted: deleted === 1 };
}

export function decodeRecords(bytes: Uint8Array): Decoded {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { records: [], rejected: 1 };
  }
  const o = parsed as { v?: unknown; r?: unknown } | null;
  if (o === null || typeof o !== 'object' || o.v !== FORMAT || !Array.isArray(o.r)) return { records: [], rejected: 1 };
  const records: DnsRecord[] = [];
  let rejected = 0;
  for (const e of o.r as unknown[]) {
    const r = decodeEntry(e);
    if (r === undefined) rejected++;
    else records.push(r);
  }
  return { records, rejected };
}
