// Runs real `weft` processes (the built dist/agent/cli.js) inside lab hosts:
// an agent with its own run and state dirs, and one-shot CLI commands. The
// agent's unix socket is a file, so the test process reaches its API directly.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callAgent } from '../../agent/api/client.js';
import type { AgentStatus } from '../../agent/api/types.js';
import type { ExecResult, LabProcess } from './exec.js';
import type { Holder } from './holder.js';
import type { Namespace } from './netns.js';
import { UNDERLAY_GATEWAY } from './lab.js';

/** The repository root, found from this file whether it runs as .ts or from dist/. */
export const REPO_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || existsSync(join(dir, 'tsconfig.json')) === false) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the weft repository root');
    dir = up;
  }
  return dir;
})();

export const WEFT_CLI = join(REPO_ROOT, 'dist', 'agent', 'cli.js');

export function assertBuilt(): void {
  if (!existsSync(WEFT_CLI)) throw new Error(`${WEFT_CLI} is missing: run \`npm run build\` (scripts/test.sh does)`);
}

export interface AgentOptions {
  /** Directory under which run/ and state/ live; reuse it to restart "the same" agent. */
  readonly dir: string;
  readonly etcd: string;
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
  /**
   * Run the agent inside the host's holder (its long-lived mount namespace),
   * where a runtime such as podman makes its netns mounts: the agent opens
   * those paths, so it must see them.
   */
  readonly holder?: Holder;
}

export class WeftAgent {
  proc!: LabProcess;
  readonly runDir: string;
  readonly stateDir: string;

  constructor(
    readonly host: Namespace,
    readonly opts: AgentOptions,
  ) {
    this.runDir = join(opts.dir, 'run');
    this.stateDir = join(opts.dir, 'state');
  }

  async start(): Promise<this> {
    assertBuilt();
    await mkdir(this.opts.dir, { recursive: true });
    const spawn = this.opts.holder ? this.opts.holder.spawn.bind(this.opts.holder) : this.host.spawn.bind(this.host);
    // Outside names go to the lab's own underlay address (where a test may run a fake upstream),
    // never to this machine's resolvers: lab traffic stays inside the lab.
    this.proc = spawn(
      [process.execPath, WEFT_CLI, 'agent', '--etcd-endpoints', this.opts.etcd, '--run-dir', this.runDir, '--state-dir', this.stateDir, '--healthz-listen', '', '--watch-check-interval', '2', '--log-level', 'debug', '--cnm-socket', '', '--dns-upstream', `${UNDERLAY_GATEWAY}:53`, ...(this.opts.args ?? [])],
      { env: this.opts.env },
    );
    return this;
  }

  status(timeoutMs = 2000): Promise<AgentStatus> {
    return callAgent<AgentStatus>(this.runDir, 'GET', '/v1/status', undefined, timeoutMs);
  }

  /** Polls the agent's status until `pred` holds (bounded); returns the last status. */
  async waitFor(pred: (s: AgentStatus) => boolean, what: string, timeoutMs = 20_000): Promise<AgentStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: AgentStatus | undefined;
    let lastErr = '';
    while (Date.now() < deadline) {
      if (!this.proc.running) throw new Error(`agent on ${this.host.name} exited while waiting for ${what}:\n${this.proc.stderr.slice(-3000)}`);
      try {
        last = await this.status();
        if (pred(last)) return last;
      } catch (e) {
        lastErr = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`agent on ${this.host.name}: timed out waiting for ${what}; last status ${JSON.stringify(last)} ${lastErr}\n${this.proc.stderr.slice(-3000)}`);
  }

  ready(timeoutMs?: number): Promise<AgentStatus> {
    return this.waitFor((s) => s.ready, 'ready', timeoutMs);
  }
}

export function startAgent(host: Namespace, opts: AgentOptions): Promise<WeftAgent> {
  return new WeftAgent(host, opts).start();
}

/** Runs a one-shot `weft` command inside a namespace; never throws on a non-zero exit. */
export function weft(ns: Namespace, args: readonly string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<ExecResult> {
  assertBuilt();
  return ns.exec([process.execPath, WEFT_CLI, ...args], { ...opts, allowFail: true, timeoutMs: 20_000 });
}

export function repoPath(...parts: string[]): string {
  return resolve(REPO_ROOT, ...parts);
}
