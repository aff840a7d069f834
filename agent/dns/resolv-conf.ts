// The resolver configuration containers get: weft's DNS server and the
// cluster domain as search domain. For `weft attach --netns /run/netns/NAME`
// (a named namespace) the agent writes `/etc/netns/NAME/resolv.conf`, which
// `ip netns exec NAME` binds over /etc/resolv.conf; CNI runtimes get the same
// in the result's `dns` and write it themselves. The file carries a marker so
// that detach removes only a file weft wrote.

import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../../ipam/atomic-file.js';

export const MARKER = '# written by weft for this network namespace; removed on detach';

export interface ClientDns {
  readonly nameservers: string[];
  readonly search: string[];
  readonly options: string[];
}

export function resolvConfText(dns: ClientDns): string {
  return [MARKER, ...dns.nameservers.map((n) => `nameserver ${n}`), `search ${dns.search.join(' ')}`, ...(dns.options.length ? [`options ${dns.options.join(' ')}`] : []), ''].join('\n');
}

/** The name of a named namespace's path (/run/netns/NAME or /var/run/netns/NAME), else undefined. */
export function namedNetns(path: string): string | undefined {
  const name = basename(path);
  const dir = dirname(path);
  return (dir === '/run/netns' || dir === '/var/run/netns') && /^[A-Za-z0-9_.-]+$/.test(name) && name !== '.' && name !== '..' ? name : undefined;
}

export async function writeNetnsResolvConf(etcNetns: string, netns: string, dns: ClientDns): Promise<string | undefined> {
  const name = namedNetns(netns);
  if (name === undefined) return undefined;
  const path = join(etcNetns, name, 'resolv.conf');
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  // Someone else's file (the operator's) is theirs to keep.
  if (existing !== undefined && !existing.startsWith(MARKER)) return undefined;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, resolvConfText(dns), 0o644);
  return path;
}

export async function removeNetnsResolvConf(etcNetns: string, netns: string): Promise<void> {
  const name = namedNetns(netns);
  if (name === undefined) return;
  const path = join(etcNetns, name, 'resolv.conf');
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing === undefined || !existing.startsWith(MARKER)) return;
  await rm(path, { force: true });
  await rmdir(dirname(path)).catch(() => undefined);
}
