// Kernel settings under /proc/sys that the data plane needs (IP forwarding).
// A writer is a dependency passed into the backends rather than a call they
// make themselves: /proc/sys/net is per network namespace, the agent runs
// inside its host's namespace and passes `procSysctl`, while tests drive a
// backend from a process in the root namespace and must pass a writer that
// acts inside the lab host instead (never the root namespace's settings).

import { readFile, writeFile } from 'node:fs/promises';
import { WeftError } from '../ipam/errors.js';

/** Sets `key` (dotted, as `sysctl` spells it: net.ipv4.ip_forward) to `value`. */
export type SysctlWriter = (key: string, value: string) => Promise<void>;

const KEY_RE = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)+$/i;

/** `net.ipv4.ip_forward` -> `/proc/sys/net/ipv4/ip_forward`; strict so no key escapes /proc/sys. */
export function sysctlPath(key: string): string {
  if (!KEY_RE.test(key)) throw new WeftError('INVALID_ARGUMENT', `not a sysctl key: "${key}"`, { key });
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

/**
 * Writes through /proc/sys of the calling process's network namespace, only
 * when the value differs (a resync then costs one read, and never fires the
 * kernel's side effects of a forwarding write, which resets per-device settings).
 */
export const procSysctl: SysctlWriter = async (key, value) => {
  const path = sysctlPath(key);
  try {
    if ((await readFile(path, 'utf8')).trim() === value) return;
    await writeFile(path, `${value}\n`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new WeftError('KERNEL', `cannot set ${key}=${value} (${path}): ${err.message}`, { key, value, errno: err.code });
  }
};
