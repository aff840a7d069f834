// A small CRI client: the RuntimeService calls kubelet makes to start and stop
// a pod's sandbox, over containerd's gRPC socket, from a hand-written .proto
// (cri/runtime-v1.proto). Debian packages no crictl; this is what lets the
// e2e tests drive containerd's CRI plugin (and so weft's CNI plugin) exactly
// as Kubernetes does, without a kubelet.

import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { REPO_ROOT } from './weft.js';

const PROTO = join(REPO_ROOT, 'test', 'lab', 'cri', 'runtime-v1.proto');
const CALL_TIMEOUT_MS = 60_000;

export interface PodSandboxMetadata {
  readonly name: string;
  readonly uid: string;
  readonly namespace: string;
  readonly attempt?: number;
}

export interface PodSandboxConfig {
  readonly metadata: PodSandboxMetadata;
  readonly hostname?: string;
  readonly logDirectory?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly linux?: { readonly cgroupParent?: string };
}

export interface PodSandboxStatus {
  readonly id: string;
  readonly metadata: PodSandboxMetadata;
  readonly state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  readonly network?: { readonly ip: string };
}

export interface RuntimeCondition {
  readonly type: string;
  readonly status: boolean;
  readonly reason: string;
  readonly message: string;
}

type Callback<T> = (err: ServiceError | null, value?: T) => void;
/** The generated client's shape for the calls used; proto-loader gives no static types. */
interface RuntimeServiceStub extends Client {
  RunPodSandbox(req: { config: PodSandboxConfig; runtimeHandler?: string }, opts: { deadline: Date }, cb: Callback<{ podSandboxId: string }>): void;
  StopPodSandbox(req: { podSandboxId: string }, opts: { deadline: Date }, cb: Callback<object>): void;
  RemovePodSandbox(req: { podSandboxId: string }, opts: { deadline: Date }, cb: Callback<object>): void;
  PodSandboxStatus(req: { podSandboxId: string; verbose?: boolean }, opts: { deadline: Date }, cb: Callback<{ status: PodSandboxStatus; info: Record<string, string> }>): void;
  Status(req: { verbose?: boolean }, opts: { deadline: Date }, cb: Callback<{ status: { conditions: RuntimeCondition[] } }>): void;
}

export class CriClient {
  private readonly stub: RuntimeServiceStub;

  constructor(socketPath: string) {
    const def = loadSync(PROTO, { keepCase: false, longs: String, enums: String, defaults: true });
    // loadPackageDefinition returns a loosely typed tree; the path below is the .proto's package and service.
    const pkg = loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => RuntimeServiceStub } } };
    this.stub = new pkg.runtime.v1.RuntimeService(`unix://${socketPath}`, credentials.createInsecure());
  }

  private call<Req, Res>(method: (req: Req, opts: { deadline: Date }, cb: Callback<Res>) => void, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.stub, req, { deadline: new Date(Date.now() + CALL_TIMEOUT_MS) }, (err, value) => (err ? reject(err) : resolve(value as Res)));
    });
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    return (await this.call(this.stub.RunPodSandbox, { config })).podSandboxId;
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatus> {
    return (await this.call(this.stub.PodSandboxStatus, { podSandboxId: id })).status;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call(this.stub.StopPodSandbox, { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call(this.stub.RemovePodSandbox, { podSandboxId: id });
  }

  /** The runtime's conditions (RuntimeReady, NetworkReady). */
  async status(): Promise<RuntimeCondition[]> {
    return (await this.call(this.stub.Status, {})).status.conditions;
  }

  close(): void {
    this.stub.close();
  }
}
