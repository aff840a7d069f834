// `weft agent`: the daemon. Wires the control plane together: underlay
// detection → network config → subnet lease → subnet.env and state → lease
// watch → (data plane, next) — plus health endpoints and signal handling.
// Decisions live in ipam/; this file only orders the steps and owns lifetimes.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import { formatCidr } from '../../ipam/cidr.js';
import { createEtcdClient } from '../../ipam/etcd-client.js';
import { EtcdSubnetRegistry } from '../../ipam/etcd-registry.js';
import { LeaseWatcher } from '../../ipam/lease-watcher.js';
import { SubnetManager } from '../../ipam/subnet-manager.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { overlayMtu } from '../../encap/backend.js';
import type { FlagValues } from '../flags.js';
import { startHealthServer } from '../health.js';
import { startApiServer } from '../api/server.js';
import { socketPathOf } from '../api/client.js';
import type { AgentStatus } from '../api/types.js';
import { detectUnderlay } from '../host-info.js';
import { componentLogger } from '../log.js';
import { waitForNetworkConfig } from '../network-config-source.js';
import { etcdOptionsFrom, subnetFileFrom } from '../options.js';
import { previousSubnet, saveSubnet, writeSubnetEnv } from '../state.js';

export async function runAgent(v: FlagValues, root: Logger): Promise<number> {
  const log = componentLogger(root, 'agent');
  const stop = new AbortController();
  const stateDir = v['state-dir'] as string;
  const subnetFile = subnetFileFrom(v);
  const prefix = (v['etcd-prefix'] as string).replace(/\/+$/, '');
  const ipMasq = v['ip-masq'] as boolean;

  const underlay = detectUnderlay({ iface: v['iface'] as string | undefined, publicIP: v['public-ip'] as string | undefined });
  log.info(underlay, 'underlay');

  const etcdOpts = etcdOptionsFrom(v);
  const registry = new EtcdSubnetRegistry(createEtcdClient(etcdOpts), prefix, etcdOpts.endpoints);

  let health: Server | undefined;
  let lease: Lease | undefined;
  let subnetEnvWritten = false;
  let leasesKnown = false;
  let manager: SubnetManager | undefined;
  let watcher: LeaseWatcher | undefined;
  let config: NetworkConfig | undefined;
  let mtu: number | undefined;
  let revision = 0;
  const notReady = (): string[] => [
    ...(lease === undefined ? ['subnet lease'] : []),
    ...(subnetEnvWritten ? [] : ['subnet.env']),
    ...(leasesKnown ? [] : ['lease list']),
  ];
  const status = (): AgentStatus => ({
    ready: notReady().length === 0,
    waitingFor: notReady(),
    publicIP: underlay.publicIP,
    iface: underlay.iface,
    ...(config ? { network: formatCidr(config.network), backend: config.backend.type } : {}),
    ...(mtu !== undefined ? { mtu } : {}),
    ...(lease ? { subnet: formatCidr(lease.subnet), leaseId: lease.leaseId } : {}),
    revision,
    leases: (watcher?.current() ?? []).map((l) => ({ subnet: formatCidr(l.subnet), publicIP: l.attrs.publicIP, backendType: l.attrs.backendType })),
  });
  const runDir = v['run-dir'] as string;
  const api = await startApiServer(socketPathOf(runDir), { 'GET /v1/status': async () => status() }, componentLogger(root, 'api'));
  const listen = v['healthz-listen'] as string;
  if (listen !== '') {
    health = await startHealthServer(listen, { notReady }, componentLogger(root, 'health'));
  }

  const shutdown = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      log.info({ signal: sig }, 'stopping');
      stop.abort();
      void (async () => {
        await watcher?.stop();
        if (v['release-on-exit'] === true) {
          await manager?.release().catch((e: unknown) => log.error({ err: (e as Error).message }, 'could not release the subnet lease'));
        } else {
          // Keep the key: the next start takes the same subnet back.
          manager?.stop();
        }
        registry.close();
        health?.close();
        api.close();
        resolve(0);
      })();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });

  const run = async (): Promise<void> => {
    const cfg = await waitForNetworkConfig(registry, prefix, systemClock, log, stop.signal);
    config = cfg;
    const overlay = overlayMtu(cfg.backend.type, underlay.mtu);
    mtu = overlay;
    log.info({ network: formatCidr(cfg.network), subnetLen: cfg.subnetLen, backend: cfg.backend.type, mtu: overlay }, 'network config');

    manager = new SubnetManager({
      registry,
      clock: systemClock,
      log: componentLogger(root, 'subnets'),
      random: Math.random,
      config: cfg,
      attrs: { publicIP: underlay.publicIP, backendType: cfg.backend.type, backendData: {} },
      ttlSeconds: v['lease-ttl'] as number,
      previous: await previousSubnet(stateDir, subnetFile),
    });
    manager.onChange((held) => {
      lease = held;
      void (async () => {
        await saveSubnet(stateDir, held.subnet, underlay.publicIP);
        await writeSubnetEnv(subnetFile, { network: cfg.network, subnet: held.subnet, mtu: overlay, ipMasq });
        subnetEnvWritten = true;
        log.info({ subnetFile, subnet: formatCidr(held.subnet) }, 'subnet.env written');
      })().catch((e: unknown) => log.error({ err: (e as Error).message, subnetFile }, 'cannot write subnet.env or state'));
    });
    await manager.acquire();

    watcher = new LeaseWatcher({
      registry,
      clock: systemClock,
      log: componentLogger(root, 'watch'),
      checkIntervalMs: (v['watch-check-interval'] as number) * 1000,
    });
    watcher.subscribe((leases, rev) => {
      leasesKnown = true;
      revision = rev;
      manager?.verify(leases);
      log.info({ leases: leases.length, revision: rev }, 'lease set');
    });
    watcher.start();
  };

  const failed = run().then(
    () => undefined,
    (e: unknown) => e,
  );
  const first = await Promise.race([shutdown.then((code) => ({ code })), failed.then((err) => ({ err }))]);
  if ('code' in first) return first.code;
  if (first.err === undefined) return shutdown;
  if (stop.signal.aborted) return shutdown;
  void watcher?.stop();
  manager?.stop();
  registry.close();
  health?.close();
  api.close();
  throw first.err;
}
