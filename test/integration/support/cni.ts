// Driving CNI plugins the way a runtime does, inside a lab host: the plugin
// binary runs in the host's network namespace with exactly the CNI_* variables
// a call sets (plus PATH, which portmap needs for iptables) and the network
// config on stdin, and the container is a lab namespace named by CNI_NETNS.
//
// A `CniPlugin` is one plugin under test: weft (the relay installed as `weft`
// in a temp bin dir, talking to an agent in the host) or the reference
// `bridge` + `host-local` from Debian's containernetworking-plugins. Both
// answer the same questions (config at a version, "is an address held for
// this container?"), so one table of conformance cases runs against either.
//
// Two ways to run a call: `execRunner` (one `ip netns exec` per call, for
// tests) and `startTimedRunner` (one long-lived driver process inside the
// host that spawns each plugin itself and times it with hrtime, so the
// benchmark measures the plugin and not `ip netns exec`). No vitest here:
// the benchmark imports this file too.

import { existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LabHost, LabProcess } from '../../lab/index.js';
import { callAgent } from '../../../agent/api/client.js';
import type { AttachmentList } from '../../../agent/api/types.js';
import { repoPath } from '../../lab/weft.js';
import { SUPPORTED_VERSIONS } from '../../../cni-plugin/version.js';

export const REFERENCE_BIN_DIR = '/usr/lib/cni';
/** The relay executable `npm run build` makes. */
export const RELAY_BUILD = repoPath('native', 'build', 'weft-cni');
/** A plain PATH: the plugins find iptables, tc and friends with it, nothing else leaks from the test process. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type CniCommandName = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** One invocation. Variables left undefined are absent from the environment, '' sets them empty. */
export interface CniCall {
  command: CniCommandName | '';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** CNI_PATH; the plugin's default when undefined, absent when null. */
  path?: string | null;
  /** The network config: an object is sent as JSON, a string as is. */
  config: Record<string, unknown> | string;
  timeoutMs?: number;
}

export interface CniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the plugin process as the runner saw it. */
  ms: number;
}

/** What runs a plugin binary inside a host. */
export interface CniRunner {
  /** `args`: command-line arguments (plugins take none; the attach bench runs `weft attach` the same way). */
  run(binary: string, env: Record<string, string>, input: string, timeoutMs: number, args?: readonly string[]): Promise<CniOutcome>;
  close(): Promise<void>;
}

export function cniEnv(call: CniCall, defaultPath: string): Record<string, string> {
  const env: Record<string, string> = { PATH: SYSTEM_PATH };
  const set = (k: string, v: string | undefined | null): void => {
    if (v !== undefined && v !== null) env[k] = v;
  };
  if (call.command !== '') env['CNI_COMMAND'] = call.command;
  set('CNI_CONTAINERID', call.containerId);
  set('CNI_NETNS', call.netns);
  set('CNI_IFNAME', call.ifname);
  set('CNI_ARGS', call.args);
  set('CNI_PATH', call.path === undefined ? defaultPath : call.path);
  return env;
}

/** One `ip netns exec <host> env -i … plugin` per call: the environment is exactly `env`. */
export function execRunner(host: LabHost): CniRunner {
  return {
    async run(binary, env, input, timeoutMs, args = []) {
      const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const t0 = performance.now();
      const r = await host.exec(['env', '-i', ...vars, binary, ...args], { input, timeoutMs, allowFail: true });
      return { ...r, ms: performance.now() - t0 };
    },
    close: async () => undefined,
  };
}

/**
 * The driver: reads one JSON job per line, spawns it with exactly the given
 * environment, answers one JSON line with the outcome and the time from spawn
 * until the plugin's stdout closed (what a runtime waits for).
 */
const DRIVER = `
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
createInterface({ input: process.stdin }).on('line', (line) => {
  const job = JSON.parse(line);
  const t0 = process.hrtime.bigint();
  const child = spawn(job.binary, job.args ?? [], { env: job.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  child.stdin.on('error', () => undefined);
  child.stdin.end(job.input);
  child.on('error', (e) => reply({ id: job.id, code: 127, stdout: '', stderr: e.message, ms: 0 }));
  child.on('close', (code) => reply({ id: job.id, code: code ?? 128, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
});
`;

interface DriverReply extends CniOutcome {
  id: number;
}

/** A runner whose `ms` is measured inside the host namespace, next to the plugin. */
export async function startTimedRunner(host: LabHost): Promise<CniRunner> {
  const proc: LabProcess = host.spawn([process.execPath, '--input-type=module', '-e', DRIVER], { stdin: true });
  const pending = new Map<number, (r: DriverReply) => void>();
  let next = 0;
  let buffered = '';
  proc.child.stdout?.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const r = JSON.parse(buffered.slice(0, nl)) as DriverReply;
      buffered = buffered.slice(nl + 1);
      pending.get(r.id)?.(r);
      pending.delete(r.id);
    }
  });
  return {
    run(binary, env, input, timeoutMs, args) {
      const id = next++;
      return new Promise<CniOutcome>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(proc.failure(`plugin call ${id} (${binary}) gave no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, (r) => {
          clearTimeout(timer);
          resolve({ code: r.code, stdout: r.stdout, stderr: r.stderr, ms: r.ms });
        });
        if (!proc.running) reject(proc.failure('the plugin driver exited'));
        else proc.child.stdin?.write(`${JSON.stringify({ id, binary, args, env, input })}\n`);
      });
    },
    async close() {
      proc.child.stdin?.end();
      await proc.stop();
    },
  };
}

/** One plugin under test, in one lab host. */
export interface CniPlugin {
  readonly label: 'weft' | 'reference';
  readonly host: LabHost;
  /** The network name its configs carry. */
  readonly network: string;
  /** The `type` of the plugin's config, and the executable's name in `binDir`. */
  readonly type: string;
  readonly binDir: string;
  /** Spec versions this plugin speaks (VERSION's supportedVersions must include them). */
  readonly versions: readonly string[];
  /** The addresses it hands out come from here (CIDR). */
  readonly subnet: string;
  /** A network config at `cniVersion`, with `extra` keys merged on top. */
  config(cniVersion: string, extra?: Record<string, unknown>): Record<string, unknown>;
  /** Whether the plugin still holds an address for this container (weft: the agent's records; host-local: its files). */
  holdsAddress(containerId: string): Promise<boolean>;
  call(call: CniCall): Promise<CniOutcome>;
}

abstract class PluginBase {
  constructor(
    readonly host: LabHost,
    readonly binDir: string,
    readonly runner: CniRunner,
    readonly subnet: string,
    readonly network: string,
  ) {}

  abstract readonly type: string;

  /**
   * Runs the executable the config's `type` names, found in CNI_PATH order as
   * a runtime finds it (so a chain's portmap and bandwidth run as themselves).
   */
  call(call: CniCall): Promise<CniOutcome> {
    const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
    const dirs = [this.binDir, REFERENCE_BIN_DIR];
    const env = cniEnv(call, dirs.join(':'));
    const named = typeof call.config === 'object' && typeof call.config['type'] === 'string' ? call.config['type'] : this.type;
    const binary = dirs.map((d) => join(d, named)).find((f) => existsSync(f)) ?? join(this.binDir, this.type);
    return this.runner.run(binary, env, input, call.timeoutMs ?? 30_000);
  }
}

export const WEFT_VERSIONS = SUPPORTED_VERSIONS;
/** containernetworking-plugins 1.1.1 (Debian 12) stops at 1.0.0. */
export const REFERENCE_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/** Copies the relay into `binDir` as `weft`, the name a conflist's `"type": "weft"` finds. */
export async function installRelay(binDir: string): Promise<void> {
  await mkdir(binDir, { recursive: true });
  await copyFile(RELAY_BUILD, join(binDir, 'weft'));
  await chmod(join(binDir, 'weft'), 0o755);
}

export class WeftPlugin extends PluginBase implements CniPlugin {
  readonly label = 'weft';
  readonly type = 'weft';
  readonly versions = WEFT_VERSIONS;

  constructor(host: LabHost, binDir: string, runner: CniRunner, readonly runDir: string, subnet: string) {
    super(host, binDir, runner, subnet, 'weftnet');
  }

  config(cniVersion: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion, name: this.network, type: this.type, runDir: this.runDir, ...extra };
  }

  attachments(): Promise<AttachmentList> {
    return callAgent<AttachmentList>(this.runDir, 'GET', '/v1/attachments', undefined, 5000);
  }

  async holdsAddress(containerId: string): Promise<boolean> {
    return (await this.attachments()).attachments.some((a) => a.containerId === containerId);
  }
}

export class ReferencePlugin extends PluginBase implements CniPlugin {
  readonly label = 'reference';
  readonly type = 'bridge';
  readonly versions = REFERENCE_VERSIONS;

  readonly bridge = 'cniref0';

  /** `dataDir` keeps host-local's leases in a temp dir instead of /var/lib/cni. */
  constructor(host: LabHost, runner: CniRunner, readonly dataDir: string) {
    super(host, REFERENCE_BIN_DIR, runner, '10.88.0.0/24', 'refnet');
  }

  config(cniVersion: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion,
      name: this.network,
      type: this.type,
      bridge: this.bridge,
      isGateway: true,
      ipam: { type: 'host-local', subnet: this.subnet, dataDir: this.dataDir, routes: [{ dst: '0.0.0.0/0' }] },
      ...extra,
    };
  }

  /** host-local writes one file per address, holding `<containerId>\r\n<ifname>`. */
  async holdsAddress(containerId: string): Promise<boolean> {
    const dir = join(this.dataDir, this.network);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(n)) continue;
      const text = await readFile(join(dir, n), 'utf8').catch(() => '');
      if (text.split(/\r?\n/)[0] === containerId) return true;
    }
    return false;
  }
}

/** A CNI error result as the spec has it: the whole stdout is one JSON object with a numeric code and a msg. */
export interface CniErrorResult {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

/** Parses stdout as exactly one JSON value, or says why it is not one. */
export function parseStdout(stdout: string): { ok: true; value: unknown } | { ok: false; why: string } {
  try {
    return { ok: true, value: JSON.parse(stdout) as unknown };
  } catch (e) {
    return { ok: false, why: `stdout is not one JSON value (${(e as Error).message}): ${JSON.stringify(stdout.slice(0, 500))}` };
  }
}
