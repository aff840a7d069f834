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

import { spawn } from 'node:child_process';
import { formatCidr } from '../ipam/cidr.js';
import { WeftError } from '../ipam/errors.js';
import type { Cidr } from '../ipam/types.js';

export const MASQ_TABLE = 'weft_masq';

/** Runs an nft script in the host's namespace; injectable so tests run it inside a lab host. */
export type NftRunner = (script: string) => Promise<void>;

/** The nft script that makes the table hold exactly the masquerade rules for `network`. */
export function masqueradeScript(network: Cidr): string {
  const n = formatCidr(network);
  return [
    `table ip ${MASQ_TABLE} {}`,
    `delete table ip ${MASQ_TABLE}`,
    `table ip ${MASQ_TABLE} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    // Container to container (on this host or through the VTEP): keep the source.
    `    ip saddr ${n} ip daddr ${n} return`,
    // Leaving the overlay: the host's address, a random port to avoid clashes.
    `    ip saddr ${n} ip daddr != 224.0.0.0/4 masquerade fully-random`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The nft script that removes weft's table, whether or not it exists. */
export function unmasqueradeScript(): string {
  return [`table ip ${MASQ_TABLE} {}`, `delete table ip ${MASQ_TABLE}`, ''].join('\n');
}

/** `nft -f -` in the calling process's namespace (the agent runs inside its host's). */
export const spawnNft: NftRunner = (script) =>
  new Promise((resolve, reject) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4096)));
    child.on('error', (e) => reject(new WeftError('KERNEL', `cannot run nft: ${e.message}`, { tool: 'nft' })));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new WeftError('KERNEL', `nft -f - failed (exit ${code}): ${stderr.trim()}`, { tool: 'nft', code })),
    );
    child.stdin.on('error', () => undefined); // an early exit shows in the exit code
    child.stdin.end(script);
  });

/** Installs (enabled) or removes (disabled) weft's masquerade rules for `network`. Idempotent. */
export async function applyMasquerade(opts: { enabled: boolean; network: Cidr; run?: NftRunner }): Promise<void> {
  const run = opts.run ?? spawnNft;
  await run(opts.enabled ? masqueradeScript(opts.network) : unmasqueradeScript());
}
