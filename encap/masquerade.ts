// `--ip-masq`: source-NAT traffic that containers send out of the overlay
// (to the underlay, the internet) to the host's address, and never traffic
// between containers, which must keep its source address end to end. The
// rules mirror flannel's: return for overlay -> overlay, masquerade overlay
// -> anything else except multicast.
//
// nftables, in a table of weft's own (`ip weft_masq`), so that weft never
// edits a chain someone else owns and removing the feature is one table
// delete. The script is built by a pure function (unit-tested) and loaded in
// one `nft -f -` transaction: declaring the table, deleting it and declaring
// it again with its rules is nftables' idiom for an atomic, idempotent
// replace (no moment without rules, no duplicate rules after a restart).
//
// Reconciled like the rest of the data plane: every resync lists the table
// and reloads it only when it is missing or differs from what it should hold
// (a hand-deleted or hand-edited table heals; an intact one is left alone, so
// its counters and conntrack bindings are not disturbed every 30 s).

import { spawn } from 'node:child_process';
import { formatCidr } from '../ipam/cidr.js';
import { WeftError } from '../ipam/errors.js';
import type { Cidr } from '../ipam/types.js';

export const MASQ_TABLE = 'weft_masq';

/** Runs an nft script in the host's namespace; injectable so tests run it inside a lab host. */
export type NftRunner = (script: string) => Promise<void>;

/** Lists weft's table as `nft list table` prints it; undefined when it does not exist. */
export type NftLister = () => Promise<string | undefined>;

/** The table as it should be, in the form `nft list table` prints (up to whitespace). */
function tableText(network: Cidr): string[] {
  const n = formatCidr(network);
  return [
    `table ip ${MASQ_TABLE} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    // Container to container (on this host or through the VTEP): keep the source.
    `    ip saddr ${n} ip daddr ${n} return`,
    // Leaving the overlay: the host's address, a random port to avoid clashes.
    `    ip saddr ${n} ip daddr != 224.0.0.0/4 masquerade fully-random`,
    '  }',
    '}',
  ];
}

/** The nft script that makes the table hold exactly the masquerade rules for `network`. */
export function masqueradeScript(network: Cidr): string {
  return [`table ip ${MASQ_TABLE} {}`, `delete table ip ${MASQ_TABLE}`, ...tableText(network), ''].join('\n');
}

const squash = (text: string): string =>
  text
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '')
    .join('\n');

/** Whether a listed table holds exactly the rules for `network` (whitespace aside). Pure. */
export function masqueradeMatches(listed: string, network: Cidr): boolean {
  return squash(listed) === squash(tableText(network).join('\n'));
}

/** The nft script that removes weft's table, whether or not it exists. */
export function unmasqueradeScript(): string {
  return [`table ip ${MASQ_TABLE} {}`, `delete table ip ${MASQ_TABLE}`, ''].join('\n');
}

/** One `nft` run in the calling process's namespace (the agent runs inside its host's): its exit code and output. */
function nft(args: readonly string[], stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d.slice(0, 4096)));
    child.on('error', (e) => reject(new WeftError('KERNEL', `cannot run nft: ${e.message}`, { tool: 'nft' })));
    child.on('close', (code) => resolve({ code, out, err: err.trim() }));
    if (stdin !== undefined) {
      child.stdin?.on('error', () => undefined); // an early exit shows in the exit code
      child.stdin?.end(stdin);
    }
  });
}

/** `nft -f -` with `script` on its standard input. */
export const spawnNft: NftRunner = async (script) => {
  const r = await nft(['-f', '-'], script);
  if (r.code !== 0) throw new WeftError('KERNEL', `nft -f - failed (exit ${r.code}): ${r.err}`, { tool: 'nft', code: r.code });
};

/** `nft list table ip weft_masq`; undefined when the table is absent. */
export const listNft: NftLister = async () => {
  const r = await nft(['list', 'table', 'ip', MASQ_TABLE]);
  if (r.code === 0) return r.out;
  if (/No such file or directory/.test(r.err)) return undefined;
  throw new WeftError('KERNEL', `nft list table ip ${MASQ_TABLE} failed (exit ${r.code}): ${r.err}`, { tool: 'nft', code: r.code });
};

/**
 * Makes the kernel match the setting: loads the table when it is enabled and
 * missing or different, removes it when disabled and present, else does
 * nothing. Says what it did, so the caller can log a repair.
 */
export async function reconcileMasquerade(opts: { enabled: boolean; network: Cidr; run?: NftRunner; list?: NftLister }): Promise<'unchanged' | 'applied' | 'removed'> {
  const current = await (opts.list ?? listNft)();
  if (opts.enabled) {
    if (current !== undefined && masqueradeMatches(current, opts.network)) return 'unchanged';
    await (opts.run ?? spawnNft)(masqueradeScript(opts.network));
    return 'applied';
  }
  if (current === undefined) return 'unchanged';
  await (opts.run ?? spawnNft)(unmasqueradeScript());
  return 'removed';
}

/** Installs (enabled) or removes (disabled) weft's masquerade rules for `network`. Idempotent. */
export async function applyMasquerade(opts: { enabled: boolean; network: Cidr; run?: NftRunner }): Promise<void> {
  const run = opts.run ?? spawnNft;
  await run(opts.enabled ? masqueradeScript(opts.network) : unmasqueradeScript());
}
