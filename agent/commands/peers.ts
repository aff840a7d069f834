// `weft peers` and the gossip line of `weft status`: formatting what the
// agent's gossip component reports (GET /v1/peers, the `gossip` section of
// GET /v1/status). Pure, so the wording is unit-tested without an agent.

import type { MemberInfo } from '../gossip/types.js';
import { formatTable } from '../table.js';

export interface PeersReply { localId: string; members: MemberInfo[] }

function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 1 ? 'now' : `${s}s ago`;
}

export function peersTable(r: PeersReply, now: number): string {
  const rows = [...r.members]
    .sort((a, b) => (a.id === r.localId ? -1 : b.id === r.localId ? 1 : a.id.localeCompare(b.id, 'en', { numeric: true })))
    .map((m) => [m.id === r.localId ? `${m.id} (this host)` : m.id, `${m.addr}:${m.port}`, m.state, String(m.incarnation), m.id === r.localId ? '-' : ago(m.lastContact, now)]);
  return formatTable(['MEMBER', 'GOSSIP ADDRESS', 'STATE', 'INCARNATION', 'LAST CONTACT'], rows);
}

/** The gossip section of the status reply, as one line ("-" when the agent has no gossip). */
export function gossipStatusLine(section: unknown): string {
  if (typeof section !== 'object' || section === null) return '-';
  const g = section as { running?: boolean; port?: number; members?: number; alive?: number; suspect?: number; dead?: number; dropped?: Record<string, number> };
  if (g.running !== true) return `port ${g.port ?? '?'}, waiting for keys`;
  const dropped = Object.values(g.dropped ?? {}).reduce((a, b) => a + b, 0);
  return `port ${g.port}, ${g.members} members: ${g.alive} alive, ${g.suspect} suspect, ${g.dead} dead; ${dropped} datagrams dropped (bad key, malformed)`;
}
