// Reads the network config from etcd and validates it. The agent waits for a
// missing config (as flannel does: an operator may write it after starting the
// agents), but refuses an invalid one at once with the field and rule.

import type { Logger } from 'pino';
import { backoffMs, type Clock } from '../ipam/clock.js';
import { WeftError, isWeftError } from '../ipam/errors.js';
import { parseNetworkConfig } from '../ipam/network-config.js';
import type { SubnetRegistry } from '../ipam/subnet-registry.js';
import type { NetworkConfig } from '../ipam/types.js';
import { etcdFailureKind } from '../ipam/etcd-failure.js';

export async function readNetworkConfig(registry: SubnetRegistry, prefix: string): Promise<NetworkConfig> {
  const raw = await registry.getConfig();
  if (raw === undefined) {
    throw new WeftError('NOT_FOUND', `no network config at ${prefix}/config: write one with \`weft config set '{"Network":"10.42.0.0/16"}'\``, {
      key: `${prefix}/config`,
    });
  }
  try {
    return parseNetworkConfig(raw);
  } catch (e) {
    if (isWeftError(e)) throw new WeftError(e.code, `${e.message} (at ${prefix}/config)`, { ...e.details, key: `${prefix}/config` });
    throw e;
  }
}

/** Waits for a config to exist (and etcd to answer); an invalid config throws. */
export async function waitForNetworkConfig(registry: SubnetRegistry, prefix: string, clock: Clock, log: Logger, signal: AbortSignal): Promise<NetworkConfig> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await readNetworkConfig(registry, prefix);
    } catch (e) {
      if (!isWeftError(e, 'NOT_FOUND') && !isWeftError(e, 'UNAVAILABLE')) throw e;
      if (signal.aborted) throw e;
      log.warn({ err: e.message, attempt }, isWeftError(e, 'NOT_FOUND') ? 'waiting for the network config (none in etcd yet: weft config set)' : `waiting for the network config: cannot reach etcd (${etcdFailureKind(e)})`);
      await clock.sleep(backoffMs(attempt, 500, 10_000), signal);
    }
  }
}
