// createLab: N fake hosts on one fake L2 underlay, plus a real etcd.
//
// Layout (all inside namespaces the lab makes; nothing touches the root
// namespace): an underlay namespace holds bridge `br0` (198.18.0.1/16) and
// etcd; host i (1-based) is a namespace whose `eth0` (198.18.0.(10+i)/16) is
// the peer of veth `vh<i>` on that bridge. Veths are created from inside the
// underlay with their peer sent straight into the host namespace, so no link
// ever exists in the root namespace, even briefly. Link setup goes through one
// `ip -batch` per namespace, and independent namespaces are set up in
// parallel, to keep a lab ready in well under the time etcd takes to start.
import { installExitHandlers, cleanupLeftovers } from './cleanup.js';
import { startEtcd } from './etcd.js';
import type { EtcdHandle, EtcdTlsFiles } from './etcd.js';
import type { ExecOptions, ExecResult, LabProcess, SpawnOptions } from './exec.js';
import { startHolder } from './holder.js';
import type { Holder } from './holder.js';
import { labName, MAX_NAME_LENGTH, newRunId, sanitizeLabel } from './names.js';
import { createNamespace, Namespace } from './netns.js';
import { Scope } from './scope.js';

export const UNDERLAY_BRIDGE = 'br0';
export const UNDERLAY_GATEWAY = '198.18.0.1';
export const UNDERLAY_PREFIX_LEN = 16;
export const HOST_IFACE = 'eth0';
export const ETCD_CLIENT_PORT = 2379;
/** Host addresses are 198.18.0.(10+i): this keeps them in one /24 for readability. */
export const MAX_HOSTS = 245;

export function hostIp(index: number): string {
  return `198.18.0.${10 + index}`;
}

export interface CreateLabOptions {
  hosts: number;
  /** Start etcd in the underlay on http(s)://198.18.0.1:2379. Default true. */
  etcd?: boolean;
  /** Underlay MTU for the bridge and every veth. Default 1500. */
  mtu?: number;
  /** Serve etcd over TLS with client-cert auth (see makeTestCerts). */
  etcdTls?: EtcdTlsFiles;
}

/** An empty namespace with loopback up; later work moves a veth into it. */
export class LabContainer extends Namespace {
  constructor(
    name: string,
    scope: Scope,
    readonly host: LabHost,
    readonly label: string | undefined,
  ) {
    super(name, scope);
  }
}

export class LabHost extends Namespace {
  readonly iface = HOST_IFACE;
  readonly ip: string;
  private holderStart: Promise<Holder> | undefined;

  constructor(
    name: string,
    scope: Scope,
    readonly index: number,
    private readonly lab: LabImpl,
  ) {
    super(name, scope);
    this.ip = hostIp(index);
  }

  addContainer(label?: string): Promise<LabContainer> {
    return this.lab.addContainer(this, label);
  }

  /** The host's holder (see holder.ts), started on first use. */
  holder(): Promise<Holder> {
    this.holderStart ??= startHolder(this).catch((e: unknown) => {
      this.holderStart = undefined;
      throw e;
    });
    return this.holderStart;
  }

  async execInHolder(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return (await this.holder()).exec(argv, opts);
  }

  async spawnInHolder(argv: readonly string[], opts?: SpawnOptions): Promise<LabProcess> {
    return (await this.holder()).spawn(argv, opts);
  }
}

export interface Lab {
  readonly runId: string;
  /** hosts[0] is host 1 (198.18.0.11). */
  readonly hosts: readonly LabHost[];
  readonly underlay: Namespace;
  /** Throws if the lab was created with `etcd: false`. */
  readonly etcd: EtcdHandle;
  readonly mtu: number;
  /** Scratch space removed by destroy(). */
  readonly tmpDir: string;
  addHost(): Promise<LabHost>;
  runInUnderlay(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Kills every process the lab started, deletes its namespaces and temp dir. Idempotent. */
  destroy(): Promise<void>;
}

export function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the weft test lab needs root (network namespaces, veth, bridges): run the integration tests as root');
  }
}

class LabImpl implements Lab {
  readonly hosts: LabHost[] = [];
  underlay!: Namespace;
  private etcdHandle: EtcdHandle | undefined;
  private containers = 0;

  constructor(
    readonly scope: Scope,
    readonly mtu: number,
  ) {}

  get runId(): string {
    return this.scope.runId;
  }

  get tmpDir(): string {
    return this.scope.tmpDir;
  }

  get etcd(): EtcdHandle {
    if (!this.etcdHandle) throw new Error('this lab was created with etcd: false');
    return this.etcdHandle;
  }

  async build(hostCount: number, etcd: boolean, tls: EtcdTlsFiles | undefined): Promise<void> {
    const indices = Array.from({ length: hostCount }, (_, i) => i + 1);
    const [underlay] = await Promise.all([
      createNamespace(this.scope, labName(this.runId, 'u')),
      ...indices.map((i) => this.newHostNamespace(i)),
    ]);
    this.underlay = underlay;
    await underlay.ipBatch([
      `link add ${UNDERLAY_BRIDGE} mtu ${this.mtu} type bridge`,
      `addr add ${UNDERLAY_GATEWAY}/${UNDERLAY_PREFIX_LEN} dev ${UNDERLAY_BRIDGE}`,
      `link set ${UNDERLAY_BRIDGE} up`,
      ...this.hosts.flatMap((h) => this.vethLines(h)),
    ]);
    await Promise.all([
      ...this.hosts.map((h) => this.configureHost(h)),
      etcd ? this.startEtcd(tls) : undefined,
    ]);
  }

  private async startEtcd(tls: EtcdTlsFiles | undefined): Promise<void> {
    this.etcdHandle = await startEtcd({
      netns: this.underlay.name,
      host: UNDERLAY_GATEWAY,
      port: ETCD_CLIENT_PORT,
      tls,
      scope: this.scope,
    });
  }

  private async newHostNamespace(index: number): Promise<LabHost> {
    if (index > MAX_HOSTS) throw new Error(`a lab holds at most ${MAX_HOSTS} hosts`);
    const ns = await createNamespace(this.scope, labName(this.runId, `h${index}`));
    const host = new LabHost(ns.name, this.scope, index, this);
    this.hosts.push(host);
    this.hosts.sort((a, b) => a.index - b.index);
    return host;
  }

  private vethLines(h: LabHost): string[] {
    const veth = `vh${h.index}`;
    return [
      `link add ${veth} mtu ${this.mtu} type veth peer name ${HOST_IFACE} mtu ${this.mtu} netns ${h.name}`,
      `link set ${veth} master ${UNDERLAY_BRIDGE} up`,
    ];
  }

  private configureHost(h: LabHost): Promise<void> {
    return h.ipBatch([`addr add ${h.ip}/${UNDERLAY_PREFIX_LEN} dev ${HOST_IFACE}`, `link set ${HOST_IFACE} up`]);
  }

  async addHost(): Promise<LabHost> {
    const index = Math.max(0, ...this.hosts.map((h) => h.index)) + 1;
    const host = await this.newHostNamespace(index);
    await this.underlay.ipBatch(this.vethLines(host));
    await this.configureHost(host);
    return host;
  }

  async addContainer(host: LabHost, label: string | undefined): Promise<LabContainer> {
    const base = `c${++this.containers}`;
    const room = MAX_NAME_LENGTH - labName(this.runId, base).length - 1;
    const tag = label === undefined ? '' : sanitizeLabel(label, room);
    const ns = await createNamespace(this.scope, labName(this.runId, tag ? `${base}-${tag}` : base));
    return new LabContainer(ns.name, this.scope, host, label);
  }

  runInUnderlay(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.underlay.exec(argv, opts);
  }

  destroy(): Promise<void> {
    return this.scope.dispose();
  }
}

/** Builds a lab; see the header for the layout. Removes leftovers of dead runs first. */
export async function createLab(opts: CreateLabOptions): Promise<Lab> {
  assertRoot();
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > MAX_HOSTS) {
    throw new Error(`createLab: hosts must be an integer in 0..${MAX_HOSTS}, got ${opts.hosts}`);
  }
  installExitHandlers();
  await cleanupLeftovers();
  const lab = new LabImpl(new Scope(newRunId()), opts.mtu ?? 1500);
  try {
    await lab.build(opts.hosts, opts.etcd ?? true, opts.etcdTls);
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
  return lab;
}
