// One CNI invocation, start to end: environment and stdin in, stdout and exit
// code out. The agent calls this for every request the weft-cni relay
// forwards, so it must never throw: whatever goes wrong becomes a CNI error
// on stdout with exit code 1, which is all a runtime can read.

import { rejectUnknownArgs, type CniArgs, type PodIdentity } from './args.js';
import { parseConfig, type ConfigOptions, type NetConf } from './config.js';
import { parseCommand, parseEnv, type CniEnv } from './env.js';
import { defined, isObject } from './decode.js';
import { CniError, CniErrorCode, invalidConfig, isCniError } from './errors.js';
import { fromServiceError, ServiceTimeout } from './failures.js';
import { requestedIdentity } from './requests.js';
import { formatResult, mergeResults, overlayDns } from './result.js';
import type { AttachmentKey, AttachmentService, NetworkSettings } from './service.js';
import { isSupportedVersion, LATEST_VERSION, versionInfo, type CniCommand } from './version.js';

export interface CniRequest {
  env: Readonly<Record<string, string | undefined>>;
  stdin: string;
}

export interface CniResponse {
  stdout: string;
  exitCode: number;
}

export interface ProtocolOptions extends ConfigOptions {
  /** How long one service call may take before the runtime is told to retry (code 11). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export async function handleCniRequest(
  req: CniRequest,
  service: AttachmentService,
  opts: ProtocolOptions = {},
): Promise<CniResponse> {
  let conf: NetConf | undefined;
  try {
    const command = parseCommand(req.env);
    if (command === 'VERSION') return { stdout: JSON.stringify(versionInfo()), exitCode: 0 };
    const env = parseEnv(req.env);
    conf = parseConfig(req.stdin, command, opts);
    if ('args' in env) rejectUnknownArgs(env.args);
    const stdout = await dispatch(env, conf, service, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    return { stdout, exitCode: 0 };
  } catch (e) {
    const err = isCniError(e)
      ? e
      : new CniError(CniErrorCode.Internal, 'internal error in weft', e instanceof Error ? e.message : String(e));
    return { stdout: JSON.stringify(err.toJSON(conf?.cniVersion ?? peekVersion(req.stdin))), exitCode: 1 };
  }
}

/** What ADD, DEL and CHECK requests share. */
type Target = AttachmentKey & NetworkSettings & { pod: PodIdentity };

async function dispatch(env: CniEnv, conf: NetConf, service: AttachmentService, timeoutMs: number): Promise<string> {
  const settings: NetworkSettings = defined({ runDir: conf.runDir, mtu: conf.mtu, args: conf.args });
  const call = <T>(fn: () => Promise<T>): Promise<T> => callService(fn, env.command, timeoutMs);
  const target = (e: { containerId: string; ifname: string; args: CniArgs }): Target => ({
    networkName: conf.name,
    containerId: e.containerId,
    ifname: e.ifname,
    ...settings,
    pod: e.args.pod,
  });

  switch (env.command) {
    case 'ADD': {
      const want = requestedIdentity(conf, env.args);
      const asked = { mac: want.mac?.value, macField: want.mac?.field, ip: want.ip?.address, ipField: want.ip?.field };
      const req = { ...target(env), netns: env.netns, ...asked, dns: conf.dns };
      const result = await call(() => service.add(defined(req)));
      // An explicit `dns` in the config is the operator's choice; it wins over the agent's defaults.
      const mine = conf.dns === undefined ? result : { ...result, dns: overlayDns(result.dns, conf.dns) };
      const merged = conf.prevResult === undefined ? mine : mergeResults(conf.prevResult, mine);
      return JSON.stringify(formatResult(merged, conf.cniVersion));
    }
    case 'DEL':
      try {
        const req = { ...target(env), netns: env.netns, prevResult: conf.prevResult };
        await call(() => service.del(defined(req)));
      } catch (e) {
        // DEL is idempotent (spec): "already gone" is the outcome the runtime asked for.
        if (!(isCniError(e) && e.code === CniErrorCode.UnknownContainer)) throw e;
      }
      return '';
    case 'CHECK': {
      const prevResult = conf.prevResult;
      if (prevResult === undefined) throw invalidConfig('prevResult', 'missing: CHECK compares against the result of ADD');
      await call(() => service.check({ ...target(env), netns: env.netns, prevResult }));
      return '';
    }
    case 'STATUS': {
      const status = await call(() => service.status(conf.name));
      if (!status.ready) {
        throw new CniError(
          status.disruptsExisting === true ? CniErrorCode.PluginNotAvailableDisrupted : CniErrorCode.PluginNotAvailable,
          status.disruptsExisting === true
            ? 'weft is not available and existing containers may have lost connectivity'
            : 'weft is not available',
          status.reason ?? '',
        );
      }
      return '';
    }
    case 'GC':
      await call(() => service.gc(conf.validAttachments ?? [], conf.name, settings));
      return '';
    case 'VERSION':
      return JSON.stringify(versionInfo());
  }
}

async function callService<T>(fn: () => Promise<T>, command: CniCommand, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ServiceTimeout(timeoutMs)), timeoutMs);
  });
  try {
    // `then` also catches a service method that throws before returning its promise.
    return await Promise.race([Promise.resolve().then(fn), timeout]);
  } catch (e) {
    throw fromServiceError(e, command);
  } finally {
    clearTimeout(timer);
  }
}

/** For errors raised before the config is understood: answer in the caller's version if it is one weft speaks. */
function peekVersion(stdin: string): string {
  try {
    const parsed: unknown = JSON.parse(stdin);
    const v = isObject(parsed) ? parsed['cniVersion'] : undefined;
    if (typeof v === 'string' && isSupportedVersion(v)) return v;
  } catch {
    // Not JSON: the error being reported says so already.
  }
  return LATEST_VERSION;
}
