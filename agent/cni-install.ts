// Installs the CNI plugin for runtimes, as flannel's DaemonSet does: the relay
// executable into the CNI bin dir (as `weft`) and a conflist into the CNI
// config dir. Both are written to a temporary file in the target directory and
// renamed, so a runtime never sees half a binary or half a config; a running
// plugin keeps its old inode. The agent calls this only once it is ready, so
// runtimes do not send containers to a node that cannot network them yet;
// `weft install-cni` on its own installs at once (like flannel's init
// container): until the agent is ready, ADD answers code 11 and STATUS 50.
//
// The conflist is what the runtimes Debian 12 ships accept: podman 4.3 and
// containerd 1.6 refuse results of 1.1.0, and the reference portmap (plugins
// 1.1.1) stops at 1.0.0, so the file says `"cniVersion": "1.0.0"` and lists
// `"cniVersions": ["1.0.0", "1.1.0"]`, from which newer libcni (1.2+) picks
// the highest it speaks (and so gets STATUS and GC). `--cni-version` pins one
// version instead. The decisions (which version, whether to chain portmap,
// what to warn about) are pure functions over what was found on disk.

import { access, chmod, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../ipam/atomic-file.js';
import { WeftError } from '../ipam/errors.js';
import { SUPPORTED_VERSIONS, compareVersions, isSupportedVersion } from '../cni-plugin/version.js';
import type { FlagSpec, FlagValues } from './flags.js';

/** What the conflist says when no version is pinned (see the header). */
export const DEFAULT_CNI_VERSION = '1.0.0';
export const DEFAULT_CNI_VERSIONS: readonly string[] = ['1.0.0', '1.1.0'];
/** Where runtimes conventionally look for plugins besides their configured bin dir (podman's defaults among them). */
export const CONVENTIONAL_PLUGIN_DIRS: readonly string[] = ['/opt/cni/bin', '/usr/lib/cni', '/usr/libexec/cni'];
/** The highest version the reference portmap of Debian 12 (plugins 1.1.1) accepts. */
const PORTMAP_MAX_VERSION = '1.0.0';

export const cniInstallFlags: readonly FlagSpec[] = [
  { name: 'cni-bin-dir', type: 'string', default: '/opt/cni/bin', help: 'CNI plugin directory the runtime searches (install-cni)' },
  { name: 'cni-conf-dir', type: 'string', default: '/etc/cni/net.d', help: 'CNI config directory the runtime reads (install-cni)' },
  { name: 'cni-conf-name', type: 'string', default: '10-weft.conflist', help: 'file name of the conflist (install-cni)' },
  { name: 'cni-network-name', type: 'string', default: 'weft', help: 'network name in the conflist (install-cni)' },
  {
    name: 'cni-version',
    type: 'string',
    defaultText: `${DEFAULT_CNI_VERSION}, with cniVersions ${DEFAULT_CNI_VERSIONS.join(',')}`,
    help: `pin the conflist's cniVersion (one of ${SUPPORTED_VERSIONS.join(', ')}; install-cni)`,
  },
  {
    name: 'cni-portmap',
    type: 'string',
    default: 'auto',
    help: `chain the portmap plugin: auto (when found in the bin dir or ${CONVENTIONAL_PLUGIN_DIRS.join(', ')}), yes, no (install-cni)`,
  },
];

export type PortmapChoice = 'auto' | 'yes' | 'no';

export interface CniInstallOptions {
  readonly binDir: string;
  readonly confDir: string;
  readonly confName: string;
  readonly networkName: string;
  readonly runDir: string;
  /** A pinned cniVersion; undefined writes the default pair (see the header). */
  readonly cniVersion?: string;
  /** Default auto. */
  readonly portmap?: PortmapChoice;
  /** The relay to install; default: native/build/weft-cni of this checkout. */
  readonly relayPath?: string;
  /** Where else to look for portmap; default CONVENTIONAL_PLUGIN_DIRS (tests point it elsewhere). */
  readonly pluginDirs?: readonly string[];
}

/** Checks the version and portmap flags here, so a bad value stops the agent at start, not once it is ready. */
export function cniInstallOptionsFrom(v: FlagValues): CniInstallOptions {
  const cniVersion = v['cni-version'] as string | undefined;
  if (cniVersion !== undefined && !isSupportedVersion(cniVersion)) {
    throw new WeftError('INVALID_ARGUMENT', `--cni-version ${JSON.stringify(cniVersion)}: weft speaks ${SUPPORTED_VERSIONS.join(', ')}; leave it unset for ${DEFAULT_CNI_VERSION} with cniVersions ${DEFAULT_CNI_VERSIONS.join(', ')}`, { flag: 'cni-version' });
  }
  const portmap = (v['cni-portmap'] as string | undefined) ?? 'auto';
  if (portmap !== 'auto' && portmap !== 'yes' && portmap !== 'no') {
    throw new WeftError('INVALID_ARGUMENT', `--cni-portmap ${JSON.stringify(portmap)}: use auto, yes or no`, { flag: 'cni-portmap' });
  }
  return {
    binDir: v['cni-bin-dir'] as string,
    confDir: v['cni-conf-dir'] as string,
    confName: v['cni-conf-name'] as string,
    networkName: v['cni-network-name'] as string,
    runDir: v['run-dir'] as string,
    ...(cniVersion !== undefined ? { cniVersion } : {}),
    portmap,
  };
}

export const DEFAULT_RELAY = resolve(dirname(fileURLToPath(import.meta.url)), '../../native/build/weft-cni');

export interface ConflistSpec {
  readonly networkName: string;
  readonly runDir: string;
  readonly withPortmap: boolean;
  readonly cniVersion?: string;
}

/**
 * The conflist weft installs. The weft plugin declares the `ips` and `mac`
 * capabilities, so runtimes pass `runtimeConfig` (podman's --ip and
 * --mac-address through it on newer versions, Kubernetes' static IPs).
 */
export function renderConflist(o: ConflistSpec): string {
  const versions = o.cniVersion === undefined ? { cniVersion: DEFAULT_CNI_VERSION, cniVersions: [...DEFAULT_CNI_VERSIONS] } : { cniVersion: o.cniVersion };
  const plugins: Record<string, unknown>[] = [{ type: 'weft', runDir: o.runDir, capabilities: { ips: true, mac: true } }];
  if (o.withPortmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  return JSON.stringify({ ...versions, name: o.networkName, plugins }, null, 2) + '\n';
}

/** What was found on disk; the input of `planInstall`. */
export interface Found {
  /** The first directory (bin dir first) holding portmap, if any. */
  readonly portmapDir?: string;
  readonly loopbackInBinDir: boolean;
}

export interface InstallPlan {
  readonly withPortmap: boolean;
  /** Lines saying what will be done, for stdout or the log. */
  readonly notes: string[];
  /** Things the operator must fix for some runtimes, for stderr or the log. */
  readonly warnings: string[];
}

/** Pure: whether to chain portmap and what to tell the operator. */
export function planInstall(o: Pick<CniInstallOptions, 'binDir' | 'cniVersion' | 'portmap'>, found: Found): InstallPlan {
  const notes: string[] = [];
  const warnings: string[] = [];
  const choice = o.portmap ?? 'auto';
  const withPortmap = choice === 'yes' || (choice === 'auto' && found.portmapDir !== undefined);
  if (withPortmap) {
    notes.push(found.portmapDir === undefined ? 'chained portmap (--cni-portmap yes; it was not found here)' : `chained portmap (found in ${found.portmapDir})`);
    if (found.portmapDir !== undefined && found.portmapDir !== o.binDir) {
      warnings.push(`portmap is in ${found.portmapDir}, not in ${o.binDir}: a runtime that searches only ${o.binDir} (containerd's bin_dir) fails to find it; link it there, or install with --cni-portmap no`);
    }
    if (o.cniVersion !== undefined && compareVersions(o.cniVersion, PORTMAP_MAX_VERSION) > 0) {
      warnings.push(`--cni-version ${o.cniVersion} with portmap chained: the reference portmap before plugins 1.2 accepts at most ${PORTMAP_MAX_VERSION}, and a runtime then drops the whole network`);
    }
  } else {
    notes.push(choice === 'no' ? 'portmap not chained (--cni-portmap no)' : `portmap not chained: not found in ${o.binDir} or ${CONVENTIONAL_PLUGIN_DIRS.join(', ')}`);
  }
  if (!found.loopbackInBinDir) {
    warnings.push(`${o.binDir} has no loopback plugin: containerd's CRI (the path kubelet takes) needs it there to set up a pod's lo; install the reference plugins (Debian: containernetworking-plugins) into ${o.binDir}`);
  }
  return { withPortmap, notes, warnings };
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

export interface InstallResult {
  readonly plugin: string;
  readonly conflist: string;
  readonly withPortmap: boolean;
  readonly notes: string[];
  readonly warnings: string[];
}

export async function installCni(o: CniInstallOptions): Promise<InstallResult> {
  const relay = o.relayPath ?? DEFAULT_RELAY;
  if (!(await exists(relay))) {
    throw new WeftError('NOT_FOUND', `the CNI relay ${relay} is missing: build it with \`sh native/build.sh\``);
  }
  if (!/^[\w.-]+\.conflist$/.test(o.confName)) {
    throw new WeftError('INVALID_ARGUMENT', `--cni-conf-name ${o.confName}: must be a plain file name ending in .conflist`);
  }
  if (o.cniVersion !== undefined && !isSupportedVersion(o.cniVersion)) {
    throw new WeftError('INVALID_ARGUMENT', `--cni-version ${JSON.stringify(o.cniVersion)}: weft speaks ${SUPPORTED_VERSIONS.join(', ')}`, { flag: 'cni-version' });
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
  let portmapDir: string | undefined;
  for (const dir of [o.binDir, ...(o.pluginDirs ?? CONVENTIONAL_PLUGIN_DIRS)]) {
    if (await exists(join(dir, 'portmap'))) {
      portmapDir = dir;
      break;
    }
  }
  const plan = planInstall(o, { ...(portmapDir !== undefined ? { portmapDir } : {}), loopbackInBinDir: await exists(join(o.binDir, 'loopback')) });
  const conflist = join(o.confDir, o.confName);
  await writeFileAtomic(conflist, renderConflist({ networkName: o.networkName, runDir: o.runDir, withPortmap: plan.withPortmap, ...(o.cniVersion !== undefined ? { cniVersion: o.cniVersion } : {}) }));
  const version = o.cniVersion ?? `${DEFAULT_CNI_VERSION} (cniVersions ${DEFAULT_CNI_VERSIONS.join(', ')})`;
  const notes = [`installed the plugin as ${plugin}`, `wrote ${conflist}: network ${o.networkName}, cniVersion ${version}, agent socket in ${o.runDir}`, ...plan.notes];
  return { plugin, conflist, withPortmap: plan.withPortmap, notes, warnings: plan.warnings };
}
