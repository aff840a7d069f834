// `weft dns ls|add|rm`: the operator's view of the cluster's DNS records and
// the names added by hand, over the local agent's socket. The agent checks
// every name and address; this only shapes requests and replies.

import { WeftError } from '../../ipam/errors.js';
import { callAgent } from '../api/client.js';
import type { ListedRecord } from '../dns/record-store.js';
import { versionMs } from '../dns/hybrid-clock.js';
import { EXIT } from '../exit-codes.js';
import type { FlagSpec, FlagValues } from '../flags.js';
import { runDirFlag } from '../options.js';
import { formatTable } from '../table.js';

export const DNS_USAGE = 'weft dns ls [--json] [--all] | weft dns add NAME IP | weft dns rm NAME [IP]   [--run-dir DIR]';

export interface DnsList {
  readonly domain: string;
  readonly localId: string;
  readonly records: ListedRecord[];
}

/** Live records by default; `all` adds tombstones and hidden records (a dead owner's). */
export function dnsTable(list: DnsList, all: boolean): string {
  const rows = list.records
    .filter((r) => all || r.visible)
    .map((r) => [
      `${r.name}.${list.domain}`,
      r.address,
      r.owner === list.localId ? `${r.owner} (this host)` : r.owner,
      r.containerId,
      `${r.version} (${new Date(versionMs(r.version)).toISOString()})`,
      r.deleted ? 'removed' : r.visible ? 'live' : 'owner dead',
    ]);
  return formatTable(['NAME', 'ADDRESS', 'OWNER', 'CONTAINER', 'VERSION', 'STATE'], rows);
}

export const dnsCommand = {
  usage: DNS_USAGE,
  summary: 'list the cluster\'s DNS records (owner, version); add or remove names by hand',
  flags: [
    runDirFlag,
    { name: 'json', type: 'bool', help: 'ls: print JSON' },
    { name: 'all', type: 'bool', help: 'ls: also removed records (tombstones) and those of dead hosts' },
  ] as readonly FlagSpec[],
  run: async (v: FlagValues, positional: string[]): Promise<number> => {
    const runDir = v['run-dir'] as string;
    const [verb, ...args] = positional;
    if (verb === 'ls' && args.length === 0) {
      const list = await callAgent<DnsList>(runDir, 'GET', '/v1/dns');
      if (v['json'] === true) {
        const records = v['all'] === true ? list.records : list.records.filter((r) => r.visible);
        process.stdout.write(JSON.stringify({ ...list, records }, null, 2) + '\n');
      } else {
        process.stdout.write(dnsTable(list, v['all'] === true));
      }
      return EXIT.OK;
    }
    if (verb === 'add' && args.length === 2) {
      const r = await callAgent<{ name: string; address: string }>(runDir, 'POST', '/v1/dns/add', { name: args[0], ip: args[1] });
      process.stderr.write(`added ${r.name} ${r.address}\n`);
      return EXIT.OK;
    }
    if (verb === 'rm' && (args.length === 1 || args.length === 2)) {
      const r = await callAgent<{ removed: { name: string; address: string }[] }>(runDir, 'POST', '/v1/dns/rm', { name: args[0], ...(args[1] ? { ip: args[1] } : {}) });
      process.stderr.write(r.removed.map((x) => `removed ${x.name} ${x.address}\n`).join(''));
      return EXIT.OK;
    }
    throw new WeftError('INVALID_ARGUMENT', `usage: ${DNS_USAGE}`);
  },
};

/** The `dns` section of `GET /v1/status` (DnsComponent.status), as far as `weft status` reads it. */
interface DnsStatus {
  readonly enabled: boolean;
  readonly listening: string[];
  readonly bindError?: string;
  readonly domain: string;
  readonly upstreams: string[];
  readonly records: { names: number; entries: number; visible: number; tombstones: number };
  readonly queries?: { queries: number; servfail: number; formerr: number; refused: number };
  /** The native UDP fast path's counters (its hits are already inside `queries`). */
  readonly nativeUdp?: { hits: number; dropMissQueue: number };
}

/** One line for `weft status`; undefined when the agent reports no DNS section. */
export function dnsStatusLine(status: unknown): string | undefined {
  const d = (status as { dns?: DnsStatus }).dns;
  if (d === undefined) return undefined;
  if (!d.enabled) return 'off (--dns-listen is empty)';
  const where = d.listening.length > 0 ? `on ${d.listening.join(', ')}` : `not listening yet${d.bindError ? ` (${d.bindError})` : ''}`;
  const q = d.queries ? `, ${d.queries.queries} queries (${d.queries.servfail} SERVFAIL, ${d.queries.formerr} FORMERR, ${d.queries.refused} refused${d.nativeUdp ? `, ${d.nativeUdp.hits} answered natively${d.nativeUdp.dropMissQueue ? `, ${d.nativeUdp.dropMissQueue} dropped waiting for JS` : ''}` : ''})` : '';
  const up = d.upstreams.length > 0 ? d.upstreams.join(' ') : 'none (outside names get SERVFAIL)';
  return `${where}, ${d.domain} ${d.records.names} names (${d.records.visible} live records, ${d.records.tombstones} tombstones)${q}; upstream ${up}`;
}
