// containerd (Debian's 1.6) as a real CNI runtime inside a lab host: `ctr run
// --cni` and the CRI plugin (the path kubelet takes), both reading the CNI
// config and plugins where they look by default.
//
// containerd 1.6 hard-codes /run/containerd (shim sockets), /run/netns (the
// pods' namespaces) and /var/lib/cni (libcni's cache), and `ctr run --cni`
// reads only /etc/cni/net.d and /opt/cni/bin. All of them are made private to
// the host's holder (its own mount namespace, see holder.ts): tmpfs on
// /run/containerd, /run/netns and /opt, an overlay on /var whose upper dir is
// per host, and bind mounts of the host's CNI dirs on /etc/cni/net.d and
// /opt/cni/bin. The one trace outside the run's temp dir is the empty
// /run/containerd mount point, made if missing. The daemon, ctr and the weft
// agent all run in the holder, so they see the same namespaces.
//
// Containers and pods go to a lab-named cgroup parent, which teardown (and a
// later run, for a crashed one) empties and removes. The image is a
// docker-archive built here from the busybox rootfs tarball (no registry, no
// podman): `sleep infinity` as its command, so it also serves as the pause image.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type ExecOptions, type ExecResult, type LabProcess } from './exec.js';
import type { Holder } from './holder.js';
import type { LabHost } from './lab.js';
import { cleanupLabCgroups, removeCgroupTree } from './podman.js';
import { pollUntil } from './poll.js';

/** The image every ContainerdHost imports (in the `default` and `k8s.io` namespaces). */
export const PAUSE_IMAGE = 'localhost/weft-pause:latest';
const CGROUP_SUFFIX = '-containerd';
const REQUIRED = ['/usr/bin/containerd', '/usr/bin/ctr', '/usr/sbin/runc', '/usr/bin/containerd-shim-runc-v2'];

export function assertContainerd(): void {
  const missing = REQUIRED.filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: install Debian's containerd and runc (scripts/setup.sh does)`);
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A docker-archive (docker save format) of the busybox rootfs, runnable as `sleep infinity`. */
export async function pauseImageArchive(dir: string, rootfsTarball: string): Promise<string> {
  const work = join(dir, 'pause-image');
  await rm(work, { recursive: true, force: true });
  const layer = await readFile(rootfsTarball);
  const layerId = sha256(layer);
  const config = JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    config: { Cmd: ['/bin/sleep', 'infinity'], Env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerId}`] },
  });
  const configId = sha256(config);
  await mkdir(join(work, layerId), { recursive: true });
  await writeFile(join(work, layerId, 'layer.tar'), layer);
  await writeFile(join(work, `${configId}.json`), config);
  await writeFile(join(work, 'manifest.json'), JSON.stringify([{ Config: `${configId}.json`, RepoTags: [PAUSE_IMAGE], Layers: [`${layerId}/layer.tar`] }]));
  const archive = join(dir, 'pause-image.tar');
  await run(['tar', '-C', work, '-cf', archive, 'manifest.json', `${configId}.json`, layerId]);
  await rm(work, { recursive: true, force: true });
  return archive;
}

export interface ContainerdHostOptions {
  /** Holds everything this containerd writes; removed by teardown(). */
  readonly dir: string;
  /** Seen as /opt/cni/bin (ctr's and, here, the CRI plugin's plugin dir). */
  readonly cniBinDir: string;
  /** Seen as /etc/cni/net.d. */
  readonly cniConfDir: string;
  /** From pauseImageArchive. */
  readonly imageArchive: string;
}

const toml = (s: string): string => JSON.stringify(s);

export class ContainerdHost {
  readonly socket: string;
  readonly cgroupParent: string;
  private daemon: LabProcess | undefined;
  private readonly mounts: string[] = [];

  private constructor(
    readonly host: LabHost,
    readonly holder: Holder,
    readonly opts: ContainerdHostOptions,
  ) {
    this.socket = join(opts.dir, 'containerd.sock');
    this.cgroupParent = `/${host.name}${CGROUP_SUFFIX}`;
  }

  static async create(host: LabHost, opts: ContainerdHostOptions): Promise<ContainerdHost> {
    assertContainerd();
    await cleanupLabCgroups(CGROUP_SUFFIX);
    const c = new ContainerdHost(host, await host.holder(), opts);
    try {
      await c.init();
    } catch (e) {
      await c.teardown().catch(() => undefined);
      throw e;
    }
    return c;
  }

  private async mount(argv: string[], point: string): Promise<void> {
    await this.holder.exec(['mount', ...argv, point]);
    this.mounts.push(point);
  }

  private async init(): Promise<void> {
    const d = this.opts.dir;
    for (const sub of ['root', 'var-upper', 'var-work']) await mkdir(join(d, sub), { recursive: true, mode: 0o700 });
    await this.holder.exec(['mkdir', '-p', '/run/containerd']);
    await this.mount(['-t', 'tmpfs', '-o', 'mode=0711,size=16m', 'weft-containerd-run'], '/run/containerd');
    await this.mount(['-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'weft-containerd-netns'], '/run/netns');
    await this.mount(['-t', 'overlay', '-o', `lowerdir=/var,upperdir=${join(d, 'var-upper')},workdir=${join(d, 'var-work')}`, 'weft-containerd-var'], '/var');
    await this.mount(['-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'weft-containerd-opt'], '/opt');
    await this.holder.exec(['mkdir', '-p', '/opt/cni/bin']);
    await this.mount(['--bind', this.opts.cniBinDir], '/opt/cni/bin');
    await this.mount(['--bind', this.opts.cniConfDir], '/etc/cni/net.d');
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    const config = join(d, 'config.toml');
    await writeFile(
      config,
      [
        'version = 2',
        `root = ${toml(join(d, 'root'))}`,
        'state = "/run/containerd"',
        '[grpc]',
        `address = ${toml(this.socket)}`,
        '[ttrpc]',
        `address = ${toml(`${this.socket}.ttrpc`)}`,
        `[${cri}]`,
        `sandbox_image = ${toml(PAUSE_IMAGE)}`,
        // Root here lacks CAP_SYS_RESOURCE: without this runc fails ("can't get final child's PID from pipe").
        'restrict_oom_score_adj = true',
        'disable_apparmor = true',
        `[${cri}.containerd]`,
        'snapshotter = "native"',
        'default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        'runtime_type = "io.containerd.runc.v2"',
        `[${cri}.containerd.runtimes.runc.options]`,
        'SystemdCgroup = false',
        `[${cri}.cni]`,
        'bin_dir = "/opt/cni/bin"',
        'conf_dir = "/etc/cni/net.d"',
        '',
      ].join('\n'),
    );
    this.daemon = this.holder.spawn(['containerd', '--config', config, '--log-level', 'warn']);
    const up = await pollUntil(() => this.ctr(['version'], { allowFail: true }), (r) => r.code === 0 || !this.daemon!.running, 20_000, 200);
    if (up.code !== 0) throw this.daemon.failure(`containerd did not answer on ${this.socket}: ${up.stderr}`);
    for (const ns of ['default', 'k8s.io']) await this.ctr(['-n', ns, 'images', 'import', this.opts.imageArchive], { timeoutMs: 60_000 });
  }

  /** `ctr --address <socket> args…` in the holder, with the native snapshotter. */
  ctr(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.holder.exec(['ctr', '--address', this.socket, ...args], { timeoutMs: 60_000, ...opts, env: { CONTAINERD_SNAPSHOTTER: 'native', ...opts.env } });
  }

  /** `ctr run --cni -d`: a detached container in this host's cgroup parent. */
  runDetached(id: string, cmd: readonly string[]): Promise<ExecResult> {
    return this.ctr(['run', '--cni', '-d', '--cgroup', `${this.cgroupParent}/${id}`, PAUSE_IMAGE, id, ...cmd]);
  }

  /** Stops the daemon, kills what is left in its cgroups, unmounts, removes the dir; returns what it had to force. */
  async teardown(): Promise<string[]> {
    const notes: string[] = [];
    await this.daemon?.stop(5000);
    notes.push(...(await removeCgroupTree(this.cgroupParent.slice(1))));
    for (const m of this.mounts.splice(0).reverse()) {
      if (this.holder.process.running) await this.holder.exec(['umount', '-l', m], { allowFail: true });
    }
    await rm(this.opts.dir, { recursive: true, force: true, maxRetries: 3 });
    return notes;
  }
}
