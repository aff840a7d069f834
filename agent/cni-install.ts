// Installs the CNI plugin for runtimes, as flannel's DaemonSet does: the relay
// executable into the CNI bin dir (as `weft`) and a conflist into the CNI
// config dir. Both are written to a temporary file in the target directory and
// renamed, so a runtime never sees half a binary or half a config; a running
// plugin keeps its old inode. The agent calls this only once it is ready, so
// runtimes do not send containers to a node that cannot network them yet.

import { access, chmod, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../ipam/atomic-file.js';
import { WeftError } from '../ipam/errors.js';
import type { FlagSpec, FlagValues } from './flags.js';

export const cniInstallFlags: readonly FlagSpec[] = [
  { name: 'cni-bin-dir', type: 'string', default: '/opt/cni/bin', help: 'CNI plugin directory the runtime searches (install-cni)' },
  { name: 'cni-conf-dir', type: 'string', default: '/etc/cni/net.d', help: 'CNI config directory the runtime reads (install-cni)' },
  { name: 'cni-conf-name', type: 'string', default: '10-weft.conflist', help: 'file name of the conflist (install-cni)' },
  { name: 'cni-network-name', type: 'string', default: 'weft', help: 'network name in the conflist (install-cni)' },
];

export interface CniInstallOptions {
  readonly binDir: string;
  readonly confDir: string;
  readonly confName: string;
  readonly networkName: string;
  readonly runDir: string;
  /** The relay to install; default: native/build/weft-cni of this checkout. */
  readonly relayPath?: string;
}

export function cniInstallOptionsFrom(v: FlagValues): CniInstallOptions {
  return {
    binDir: v['cni-bin-dir'] as string,
    confDir: v['cni-conf-dir'] as string,
    confName: v['cni-conf-name'] as string,
    networkName: v['cni-network-name'] as string,
    runDir: v['run-dir'] as string,
  };
}

export const DEFAULT_RELAY = resolve(dirname(fileURLToPath(import.meta.url)), '../../native/build/weft-cni');

/** The conflist weft installs; `portmap` is chained when the bin dir has it, as flannel's does. */
export function renderConflist(o: { networkName: string; runDir: string; withPortmap: boolean }): string {
  const plugins: Record<string, unknown>[] = [{ type: 'weft', runDir: o.runDir }];
  if (o.withPortmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  return JSON.stringify({ cniVersion: '1.1.0', name: o.networkName, plugins }, null, 2) + '\n';
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

export async function installCni(o: CniInstallOptions): Promise<{ plugin: string; conflist: string }> {
  const relay = o.relayPath ?? DEFAULT_RELAY;
  if (!(await exists(relay))) {
    throw new WeftError('NOT_FOUND', `the CNI relay ${relay} is missing: build it with \`sh native/build.sh\``);
  }
  if (!/^[\w.-]+\.conflist$/.test(o.confName)) {
    throw new WeftError('INVALID_ARGUMENT', `--cni-conf-name ${o.confName}: must be a plain file name ending in .conflist`);
  }
  await mkdir(o.binDir, { recursive: true });
  await mkdir(o.confDir, { recursive: true });
  const plugin = join(o.binDir, 'weft');
  const tmp = join(o.binDir, `.weft.tmp-${process.pid}`);
  try {
    await copyFile(relay, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, plugin);
  } finally {
    await rm(tmp, { force: true });
  }
  const conflist = join(o.confDir, o.confName);
  const withPortmap = await exists(join(o.binDir, 'portmap'));
  await writeFileAtomic(conflist, renderConflist({ networkName: o.networkName, runDir: o.runDir, withPortmap }));
  return { plugin, conflist };
}
