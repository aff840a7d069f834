// A real single-member etcd for tests: inside a lab namespace or on loopback.
//
// Tests need to stop, freeze and restart the control plane, so the handle
// keeps the data dir and ports fixed across restarts and exposes the signals
// directly. Readiness is judged by `etcdctl endpoint health` (the same client
// path tests use), polled with a bound; a failure quotes etcd's own stderr.
import { createServer } from 'node:net';
import { join } from 'node:path';
import { LabProcess, run } from './exec.js';
import type { ExecOptions, ExecResult } from './exec.js';
import { installExitHandlers } from './cleanup.js';
import { newRunId } from './names.js';
import { Scope } from './scope.js';

export interface EtcdTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface StartEtcdOptions {
  /** Namespace to run in (`ip netns exec`); default: this process's namespace. */
  netns?: string;
  /** Client listen address. Default 127.0.0.1. */
  host?: string;
  /** Client port. Default: a free port (found by binding port 0 in this namespace). */
  port?: number;
  /** Peer port on 127.0.0.1. Default: 2380 inside a namespace, else a free port. */
  peerPort?: number;
  /** Serve clients over TLS and require client certificates signed by `caFile`. */
  tls?: EtcdTlsFiles;
  /** Owner of the process and data dir; default: a new scope (a standalone run). */
  scope?: Scope;
  /** Ready-wait bound. Default 15 s. */
  readyTimeoutMs?: number;
}

export interface EtcdHandle {
  /** `http(s)://host:port` */
  readonly endpoint: string;
  readonly dataDir: string;
  /** PID of the running etcd (of the last one, once stopped). */
  readonly pid: number;
  readonly tls: EtcdTlsFiles | undefined;
  /** `--endpoints …` plus TLS flags, for etcdctl. */
  readonly etcdctlFlags: string[];
  /** The running process, for its captured output. */
  readonly process: LabProcess;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** Starts again on the same data dir and ports; waits until ready. No-op while running. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGSTOP: the process stays, but answers nothing. */
  freeze(): void;
  /** SIGCONT */
  thaw(): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** `etcdctl <flags> argv…` run where etcd runs (same namespace). */
  etcdctl(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Stops etcd and, for a standalone etcd, removes its temp dir. */
  destroy(): Promise<void>;
}

/** A port that was free a moment ago in this process's namespace. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function etcdctlTlsFlags(tls: EtcdTlsFiles | undefined): string[] {
  return tls ? ['--cacert', tls.caFile, '--cert', tls.certFile, '--key', tls.keyFile] : [];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Etcd implements EtcdHandle {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly etcdctlFlags: string[];
  private proc: LabProcess | undefined;
  private readonly peerUrl: string;
  private readonly clientUrl: string;

  constructor(
    private readonly scope: Scope,
    private readonly ownsScope: boolean,
    private readonly netns: string | undefined,
    host: string,
    port: number,
    peerPort: number,
    readonly tls: EtcdTlsFiles | undefined,
    private readonly readyTimeoutMs: number,
  ) {
    this.clientUrl = `${tls ? 'https' : 'http'}://${host}:${port}`;
    this.endpoint = this.clientUrl;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
    this.dataDir = join(scope.tmpDir, `etcd-${port}`);
    this.etcdctlFlags = ['--endpoints', this.endpoint, ...etcdctlTlsFlags(tls)];
  }

  get process(): LabProcess {
    if (!this.proc) throw new Error('etcd was never started');
    return this.proc;
  }

  get pid(): number {
    return this.process.pid;
  }

  private inNetns(argv: readonly string[]): string[] {
    return this.netns ? ['ip', 'netns', 'exec', this.netns, ...argv] : [...argv];
  }

  etcdctl(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(this.inNetns(['etcdctl', ...this.etcdctlFlags, ...argv]), {
      ...opts,
      env: { ETCDCTL_API: '3', ...opts.env },
    });
  }

  async start(): Promise<void> {
    if (this.proc?.running) return;
    const tlsArgs = this.tls
      ? ['--cert-file', this.tls.certFile, '--key-file', this.tls.keyFile, '--client-cert-auth', '--trusted-ca-file', this.tls.caFile]
      : [];
    const argv = this.inNetns([
      'etcd',
      '--name', 'n1',
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', `n1=${this.peerUrl}`,
      // A single member has nobody to lose leadership to, and a restart waits one election
      // timeout before it serves again: a short one keeps stop/start tests quick.
      '--heartbeat-interval', '25',
      '--election-timeout', '250',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      ...tlsArgs,
    ]);
    const proc = this.scope.track(new LabProcess(argv));
    this.proc = proc;
    await this.waitReady(proc);
  }

  private async waitReady(proc: LabProcess): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    let last = '';
    // Bounded by the deadline; each probe is itself bounded by a short timeout.
    while (Date.now() < deadline) {
      if (!proc.running) throw proc.failure('etcd exited during startup');
      const r = await this.etcdctl(['endpoint', 'health', '--command-timeout=1s'], {
        allowFail: true,
        timeoutMs: 3000,
      }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
      if (r.code === 0 && proc.running) return;
      last = r.stderr.trim();
      await sleep(50);
    }
    await proc.stop(500);
    throw proc.failure(`etcd not healthy within ${this.readyTimeoutMs} ms (last probe: ${last})`);
  }

  async stop(): Promise<void> {
    await this.proc?.stop(10_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  freeze(): void {
    this.process.kill('SIGSTOP');
  }

  thaw(): void {
    this.process.kill('SIGCONT');
  }

  async kill(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await this.proc.exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    if (this.ownsScope) await this.scope.dispose();
  }
}

/** Starts etcd and waits until it answers; see StartEtcdOptions for defaults. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdHandle> {
  const ownsScope = opts.scope === undefined;
  const scope = opts.scope ?? new Scope(newRunId());
  if (ownsScope) installExitHandlers();
  const host = opts.host ?? '127.0.0.1';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  // Free ports can only be probed from our own namespace; inside another one the fixed defaults are free.
  const pickPorts = opts.port === undefined && opts.netns === undefined;
  // Between probing a port and etcd binding it another process may take it: retry a few times.
  const attempts = pickPorts ? 3 : 1;
  for (let i = 1; ; i++) {
    const port = opts.port ?? (opts.netns ? 2379 : await freePort(host));
    const peerPort = opts.peerPort ?? (opts.netns ? 2380 : await freePort('127.0.0.1'));
    const etcd = new Etcd(scope, ownsScope, opts.netns, host, port, peerPort, opts.tls, readyTimeoutMs);
    try {
      await etcd.start();
      return etcd;
    } catch (e) {
      const inUse = /address already in use/.test((e as Error).message);
      if (i >= attempts || !inUse) {
        if (ownsScope) await scope.dispose().catch(() => undefined);
        throw e;
      }
    }
  }
}
