// dockerd (Debian's docker.io 20.10) as a real Docker inside a lab host.
//
// Each host gets its own dockerd: data-root, exec-root, pidfile and API socket
// under a per-host directory, the `vfs` storage driver, containers under a
// lab-named cgroup parent (teardown kills what `docker rm` missed), and
// `--dns <weft0 gateway> --dns-search weft.local` so Docker's embedded DNS
// forwards names it does not know to weft's. dockerd runs in the host's
// holder (the agent, which opens Docker's sandbox namespaces, runs there too).
//
// Plugin discovery: /run/docker/plugins is shared by every dockerd, so each
// host's dockerd finds weft through its own spec file
// /etc/netns/<host>/docker/plugins/weft.spec, which `ip netns exec` binds over
// /etc/docker. It must exist before the holder starts (`writePluginSpec`).
// The image is `docker import` of the busybox rootfs tarball (no registry).
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type ExecOptions, type ExecResult, type LabProcess } from './exec.js';
import type { LabHost } from './lab.js';
import { isPidAlive } from './cleanup.js';
import { LAB_PREFIX, ownerPid } from './names.js';
import { removeCgroupTree } from './podman.js';

export const DOCKER_CLI = '/usr/bin/docker';
export const DOCKER_IMAGE = 'weft-busybox';

/** Installs docker.io when missing (as scripts/setup.sh does). */
export async function ensureDocker(): Promise<void> {
  if (existsSync('/usr/sbin/dockerd') && existsSync(DOCKER_CLI)) return;
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await run(['apt-get', 'update', '-qq'], { env, timeoutMs: 300_000 });
  await run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'docker.io'], { env, timeoutMs: 600_000 });
}

const NETNS_ETC = '/etc/netns';

function specDir(host: { readonly name: string }): string {
  return join(NETNS_ETC, host.name);
}

/** Removes a lab host's /etc/netns dir (its plugin spec); for hosts whose DockerHost never started too. */
export async function removePluginSpec(host: { readonly name: string }): Promise<void> {
  await rm(specDir(host), { recursive: true, force: true });
}

/** Removes the spec dirs and docker cgroups of lab runs whose owning process is gone (a crashed earlier run). */
export async function cleanupDockerLeftovers(): Promise<void> {
  for (const n of await readdir(NETNS_ETC).catch(() => [] as string[])) {
    const pid = n.startsWith(LAB_PREFIX) ? ownerPid(n) : undefined;
    if (pid === undefined || pid === process.pid || isPidAlive(pid)) continue;
    if (existsSync(join(NETNS_ETC, n, 'docker'))) await rm(join(NETNS_ETC, n), { recursive: true, force: true });
  }
}

/** Makes `/etc/docker/plugins/<name>.spec` as the host's dockerd will see it; call before the host's holder starts. */
export async function writePluginSpec(host: LabHost, name: string, socketPath: string): Promise<void> {
  const dir = join(specDir(host), 'docker', 'plugins');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.spec`), `unix://${socketPath}\n`);
}

export interface DockerHostOptions {
  readonly dir: string;
  /** Extra dockerd flags (e.g. --dns). */
  readonly args?: readonly string[];
}

export class DockerHost {
  readonly socket: string;
  readonly cgroupParent: string;
  proc: LabProcess | undefined;

  constructor(
    readonly host: LabHost,
    readonly opts: DockerHostOptions,
  ) {
    this.socket = join(opts.dir, 'docker.sock');
    this.cgroupParent = `${host.name}-docker`;
  }

  /** Starts dockerd in the host's holder and waits until its API answers. */
  async start(timeoutMs = 30_000): Promise<void> {
    const d = this.opts.dir;
    await mkdir(d, { recursive: true });
    const holder = await this.host.holder();
    this.proc = holder.spawn([
      '/usr/sbin/dockerd',
      '--data-root', join(d, 'data'),
      '--exec-root', join(d, 'exec'),
      '--pidfile', join(d, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      '--storage-driver', 'vfs',
      '--cgroup-parent', `/${this.cgroupParent}`,
      ...(this.opts.args ?? []),
    ]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.proc.running) throw new Error(`dockerd on ${this.host.name} exited:\n${this.proc.stderr.slice(-3000)}`);
      // A dockerd restarting after SIGKILL may accept and not answer for a while: a timed-out try is just a try.
      const r = await this.cli(['version', '--format', '{{.Server.Version}}'], { allowFail: true, timeoutMs: 5000 }).catch(() => ({ code: -1 }));
      if (r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`dockerd on ${this.host.name} did not answer within ${timeoutMs} ms:\n${this.proc.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** `docker -H <socket> …`; throws on a non-zero exit unless allowFail. */
  cli(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([DOCKER_CLI, '-H', `unix://${this.socket}`, ...args], { timeoutMs: 60_000, ...opts });
  }

  async importImage(tarball: string): Promise<void> {
    await this.cli(['import', '--change', 'CMD ["sh"]', tarball, DOCKER_IMAGE]);
  }

  /** SIGTERM dockerd (with live-restore off it stops its containers) and wait. */
  async stop(): Promise<void> {
    await this.proc?.stop(20_000);
  }

  /** Removes every container, stops dockerd, kills what is left in its cgroups, removes the spec dir. Best effort. */
  async teardown(): Promise<string[]> {
    const notes: string[] = [];
    if (this.proc?.running) {
      const ids = (await this.cli(['ps', '-aq'], { allowFail: true })).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.cli(['rm', '-f', ...ids], { allowFail: true });
      await this.stop().catch((e: Error) => notes.push(e.message));
    }
    notes.push(...(await removeCgroupTree(this.cgroupParent)));
    await removePluginSpec(this.host);
    return notes;
  }
}
