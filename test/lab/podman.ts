// podman as a real CNI runtime inside lab hosts.
//
// Each host gets its own podman: every piece of state it keeps lives under a
// per-host directory (storage root and runroot with the `vfs` driver; tmp_dir
// with file locks; the events log; the CNI config dir; runc's state through a
// wrapper), chosen through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF and flags.
// Every podman call runs through the host's holder (see holder.ts), because
// podman's per-container netns bind mounts live only in the mount namespace
// that made them; the agent that plumbs those namespaces must run there too
// (startAgent's `holder` option).
//
// Inside the holder's private mount namespace two mounts keep the rest of the
// machine unchanged: a tmpfs on /run/netns (podman's `netns-<uuid>`
// placeholders never appear in the root's /run/netns) and an overlay on /var
// whose upper dir is per host (podman 4.3 writes its image blob-info cache to
// /var/lib/containers and libcni its cache to /var/lib/cni whatever the config
// says). Containers go to a lab-named cgroup parent, which gives teardown a
// sure way to find (and kill) container processes that `podman rm` missed, and
// lets a later run remove those of a crashed one.
//
// Images need no registry: `busyboxTarball` builds a rootfs out of Debian's
// busybox-static (the binary plus one symlink per applet) for `podman import`.
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from './exec.js';
import type { ExecOptions, ExecResult } from './exec.js';
import type { Holder } from './holder.js';
import type { LabHost } from './lab.js';
import { LAB_PREFIX, ownerPid } from './names.js';
import { isPidAlive } from './cleanup.js';
import { procStartTime, signalPid } from './scope.js';

/** Commands podman needs here, and the Debian package of each. */
const REQUIRED: readonly (readonly [string, string])[] = [
  ['/usr/bin/podman', 'podman'],
  ['/usr/sbin/runc', 'runc'],
  ['/usr/bin/conmon', 'conmon'],
  ['/var/lib/dpkg/info/busybox-static.list', 'busybox-static'],
];

const BUSYBOX = '/bin/busybox';
const CGROUP_ROOT = '/sys/fs/cgroup';
/** The image every PodmanHost imports. */
export const BUSYBOX_IMAGE = 'localhost/weft-busybox:latest';

/** Installs podman, runc and busybox-static with apt-get when missing (as scripts/setup.sh does). */
export async function ensurePodman(): Promise<void> {
  const missing = [...new Set(REQUIRED.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg))];
  if (missing.length) {
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    await run(['apt-get', 'update', '-qq'], { env, timeoutMs: 300_000 });
    await run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeoutMs: 600_000 });
  }
  const ldd = await run(['ldd', BUSYBOX], { allowFail: true });
  if (!/not a dynamic executable/.test(ldd.stdout + ldd.stderr)) {
    throw new Error(`${BUSYBOX} is dynamically linked (Debian's busybox, not busybox-static): a container rootfs needs the static one`);
  }
}

/** A tarball of a busybox-static rootfs (for `podman import`), built in `dir`. */
export async function busyboxTarball(dir: string): Promise<string> {
  const root = join(dir, 'rootfs');
  await rm(root, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await copyFile(BUSYBOX, join(root, 'bin/busybox'));
  const list = await run([BUSYBOX, '--list-full']);
  for (const applet of list.stdout.split('\n').map((l) => l.trim())) {
    if (!applet || applet === 'bin/busybox' || !/^[\w./-]+$/.test(applet) || applet.includes('..')) continue;
    await mkdir(dirname(join(root, applet)), { recursive: true });
    await symlink('/bin/busybox', join(root, applet)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  const tarball = join(dir, 'busybox-rootfs.tar');
  await run(['tar', '-C', root, '-cf', tarball, '.']);
  await rm(root, { recursive: true, force: true });
  return tarball;
}

const toml = (s: string): string => JSON.stringify(s);
const tomlList = (xs: readonly string[]): string => `[${xs.map(toml).join(', ')}]`;

export interface PodmanHostOptions {
  /** Holds everything this podman writes; removed by teardown(). */
  readonly dir: string;
  /** CNI plugin directories, searched in order. */
  readonly cniPluginDirs: readonly string[];
  /** The busybox tarball to import (see busyboxTarball). */
  readonly imageTarball: string;
}

export interface RunOptions {
  readonly name: string;
  readonly network: string;
  readonly cmd: readonly string[];
  readonly capAdd?: readonly string[];
  readonly image?: string;
  /** `--ip`: the address asked for (podman 4.3 sends it as IP= in CNI_ARGS). */
  readonly ip?: string;
  /** `-p` mappings ("8080:80"), carried out by a chained portmap. */
  readonly publish?: readonly string[];
}

/** One host's podman; every call goes through the host's holder. */
export class PodmanHost {
  readonly confDir: string;
  readonly cgroupParent: string;
  private readonly env: Record<string, string>;
  private readonly globalFlags: string[];
  private readonly containerPids = new Map<number, string>();
  /** Mount points in the holder's namespace, to unmount on teardown. */
  private readonly mounts: string[] = [];

  private constructor(
    readonly host: LabHost,
    readonly holder: Holder,
    readonly opts: PodmanHostOptions,
  ) {
    const d = opts.dir;
    this.confDir = join(d, 'net.d');
    // The holder's netns name is already a lab name (weft-lab-<pid>-<rand>-hN): one cgroup per host and run.
    this.cgroupParent = `/${host.name}-podman`;
    this.env = { CONTAINERS_CONF: join(d, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(d, 'storage.conf') };
    this.globalFlags = ['--root', join(d, 'root'), '--runroot', join(d, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc', '--tmpdir', join(d, 'tmp')];
  }

  /** Writes the host's podman config, makes the holder's private mounts, imports the busybox image. */
  static async create(host: LabHost, opts: PodmanHostOptions): Promise<PodmanHost> {
    leftoverSweep ??= cleanupPodmanLeftovers();
    await leftoverSweep;
    const holder = await host.holder();
    const p = new PodmanHost(host, holder, opts);
    live.add(p);
    installExitHandler();
    await p.init();
    return p;
  }

  private async init(): Promise<void> {
    const d = this.opts.dir;
    for (const sub of ['root', 'runroot', 'tmp', 'events', 'net.d', 'runc']) await mkdir(join(d, sub), { recursive: true, mode: 0o700 });
    // runc keeps container state in /run/runc unless given --root, and podman passes its
    // --runtime-flag to some calls only (not to the `container cleanup` conmon runs on exit):
    // a wrapper under runc's own name gives every call the per-host state dir.
    const runcWrapper = join(d, 'bin', 'runc');
    await mkdir(dirname(runcWrapper), { recursive: true });
    await writeFile(runcWrapper, `#!/bin/sh\nexec /usr/sbin/runc --root '${join(d, 'runc')}' "$@"\n`, { mode: 0o755 });
    await writeFile(
      this.env.CONTAINERS_CONF!,
      [
        '[containers]',
        'netns = "bridge"',
        // Root here lacks CAP_SYS_RESOURCE and podman's default limits exceed the hard ones.
        'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]',
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = ${toml(join(d, 'events', 'events.log'))}`,
        'runtime = "runc"',
        `tmp_dir = ${toml(join(d, 'tmp'))}`,
        // The default (shm) lock segment would be shared by every podman on the machine.
        'lock_type = "file"',
        `volume_path = ${toml(join(d, 'root', 'volumes'))}`,
        `static_dir = ${toml(join(d, 'root', 'libpod'))}`,
        `image_copy_tmp_dir = ${toml(join(d, 'tmp'))}`,
        '[engine.runtimes]',
        `runc = [${toml(runcWrapper)}]`,
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ${tomlList(this.opts.cniPluginDirs)}`,
        `network_config_dir = ${toml(this.confDir)}`,
        '',
      ].join('\n'),
    );
    await writeFile(
      this.env.CONTAINERS_STORAGE_CONF!,
      ['[storage]', 'driver = "vfs"', `graphroot = ${toml(join(d, 'root'))}`, `runroot = ${toml(join(d, 'runroot'))}`, ''].join('\n'),
    );
    // Both private to the holder's mount namespace. podman's netns placeholders stay out of the
    // root's /run/netns; what podman 4.3 writes under /var whatever its config says (the image
    // blob-info cache in /var/lib/containers, libcni's cache in /var/lib/cni) lands in our upper dir.
    await mkdir(join(d, 'var-upper'), { recursive: true });
    await mkdir(join(d, 'var-work'), { recursive: true });
    await this.holder.exec(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'weft-podman-netns', '/run/netns']);
    this.mounts.push('/run/netns');
    await this.holder.exec(['mount', '-t', 'overlay', '-o', `lowerdir=/var,upperdir=${join(d, 'var-upper')},workdir=${join(d, 'var-work')}`, 'weft-podman-var', '/var']);
    this.mounts.push('/var');
    await this.podman(['import', this.opts.imageTarball, BUSYBOX_IMAGE], { timeoutMs: 60_000 });
  }

  /** `podman <global flags> args…` in the holder; throws with stderr on failure unless allowFail. */
  podman(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.holder.exec(['podman', ...this.globalFlags, ...args], { timeoutMs: 60_000, ...opts, env: { ...this.env, ...opts.env } });
  }

  /** Writes a CNI conflist into this podman's network_config_dir. */
  async addNetwork(name: string, conflist: unknown): Promise<string> {
    const file = join(this.confDir, `${name}.conflist`);
    await writeFile(file, JSON.stringify(conflist, null, 2) + '\n');
    return file;
  }

  /** `podman run -d`; returns the container id. Records the container's PID for teardown. */
  async run(o: RunOptions, opts: ExecOptions = {}): Promise<string> {
    const r = await this.podman(
      [
        'run', '-d', '--name', o.name, '--network', o.network, '--cgroup-parent', this.cgroupParent,
        ...(o.capAdd ?? []).flatMap((c) => ['--cap-add', c]),
        ...(o.ip ? ['--ip', o.ip] : []),
        ...(o.publish ?? []).flatMap((p) => ['-p', p]),
        o.image ?? BUSYBOX_IMAGE, ...o.cmd,
      ],
      opts,
    );
    const id = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code === 0) {
      const pid = Number((await this.inspect(o.name, '{{.State.Pid}}')).trim());
      const start = pid > 0 ? procStartTime(pid) : undefined;
      if (start) this.containerPids.set(pid, start);
    }
    return id;
  }

  /** `podman exec name argv…` (never throws on a non-zero exit). */
  exec(name: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.podman(['exec', name, ...argv], { allowFail: true, ...opts });
  }

  /** `podman inspect --format FORMAT name`, stdout. */
  async inspect(name: string, format: string): Promise<string> {
    return (await this.podman(['inspect', '--format', format, name])).stdout;
  }

  /** The container's IPv4 address on `network`. */
  async ip(name: string, network: string): Promise<string> {
    const ip = (await this.inspect(name, `{{(index .NetworkSettings.Networks ${JSON.stringify(network)}).IPAddress}}`)).trim();
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new Error(`podman on ${this.host.name}: no IPv4 address for ${name} on ${network}: "${ip}"`);
    return ip;
  }

  rm(name: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.podman(['rm', '-f', '-t', '0', name], opts);
  }

  /** Names of the containers podman knows (running or not). */
  async containers(): Promise<string[]> {
    const r = await this.podman(['ps', '-a', '--format', '{{.Names}}']);
    return r.stdout.split('\n').filter(Boolean);
  }

  /**
   * Removes every container (through podman, so CNI DEL runs), then kills whatever
   * still runs in this host's cgroups, removes those cgroups, unmounts the
   * holder's private mounts and deletes the per-host directory. Best effort,
   * bounded; returns what it had to do the hard way.
   */
  async teardown(): Promise<string[]> {
    const notes: string[] = [];
    if (this.holder.process.running) {
      const r = await this.podman(['rm', '-a', '-f', '-t', '0'], { allowFail: true, timeoutMs: 60_000 }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
      if (r.code !== 0) notes.push(`podman rm -a on ${this.host.name}: ${r.stderr.trim()}`);
    }
    for (const [pid, start] of this.containerPids) {
      if (procStartTime(pid) === start) {
        signalPid(pid, 'SIGKILL');
        notes.push(`killed container process ${pid}`);
      }
    }
    notes.push(...(await removeCgroupTree(this.cgroupParent.slice(1))));
    for (const m of this.mounts.splice(0).reverse()) {
      if (this.holder.process.running) await this.holder.exec(['umount', '-l', m], { allowFail: true });
    }
    await rm(this.opts.dir, { recursive: true, force: true, maxRetries: 3 });
    live.delete(this);
    return notes;
  }

  /** For process exit, where nothing async runs: kills the container processes still known. */
  killContainersSync(): void {
    for (const [pid, start] of this.containerPids) if (procStartTime(pid) === start) signalPid(pid, 'SIGKILL');
  }
}

/** PodmanHosts not yet torn down, for the exit handler. */
const live = new Set<PodmanHost>();
let exitHandlerInstalled = false;
let leftoverSweep: Promise<string[]> | undefined;

/**
 * Container processes live in their own network namespaces, out of reach of the
 * lab's teardown: on an exit without teardown (a signal, a crash) kill them here.
 * Their (then empty) cgroups go at the next run's leftover sweep.
 */
function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.killContainersSync();
  });
}

/** Cgroup controller mount points (v1 controllers and the v2 `unified` one). */
function cgroupHierarchies(): string[] {
  try {
    return readdirSync(CGROUP_ROOT).map((c) => join(CGROUP_ROOT, c)).filter((p) => existsSync(join(p, 'cgroup.procs')));
  } catch {
    return [];
  }
}

/** Kills the processes in cgroup `name` (under every hierarchy) and removes it bottom-up. */
export async function removeCgroupTree(name: string): Promise<string[]> {
  const notes: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 16) return;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name), depth + 1);
    // A killed process leaves its cgroup a moment later: a few tries, bounded.
    for (let attempt = 0; attempt < 50; attempt++) {
      const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => undefined);
      if (procs === undefined) return;
      for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
        signalPid(pid, 'SIGKILL');
        notes.push(`killed ${pid} in ${dir}`);
      }
      if (await rmdir(dir).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    notes.push(`could not remove cgroup ${dir}`);
  };
  for (const h of cgroupHierarchies()) {
    const dir = join(h, name);
    if (existsSync(dir)) await walk(dir, 0);
  }
  return notes;
}

/** Removes the podman cgroups of lab runs whose owning process is gone (a crashed earlier run). */
export function cleanupPodmanLeftovers(): Promise<string[]> {
  return cleanupLabCgroups('-podman');
}

/** Removes the lab cgroups named `<lab host><suffix>` whose owning test process is gone. */
export async function cleanupLabCgroups(suffix: string): Promise<string[]> {
  const removed: string[] = [];
  for (const h of cgroupHierarchies()) {
    const names = (await readdir(h).catch(() => [] as string[])).filter((n) => n.startsWith(LAB_PREFIX) && n.endsWith(suffix));
    for (const n of names) {
      const pid = ownerPid(n);
      if (pid === undefined || pid === process.pid || isPidAlive(pid)) continue;
      await removeCgroupTree(n);
      removed.push(join(h, n));
    }
  }
  return removed;
}
