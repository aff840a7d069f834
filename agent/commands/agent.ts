// `weft agent`: the daemon. Orders the steps and owns the lifetimes; every
// decision lives in ipam/ (which subnet), encap/ (which kernel objects) or
// cni-plugin/ (the CNI rules).
//
//   underlay → API socket → network config → VTEP MAC → lease watch (first
//   complete list) → subnet lease (chosen from that set) → subnet.env →
//   data-plane reconcile (then on every lease change and every
//   --resync-interval) → ready → install-cni
//
// The data plane is never reconciled before the first complete lease list:
// a restarted agent would otherwise remove every remote route for a moment.
// On SIGTERM/SIGINT the agent stops; kernel state and the lease stay, so a
// restart (or SIGKILL and restart) drops no packet.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import { formatCidr } from '../../ipam/cidr.js';
import { createEtcdClient } from '../../ipam/etcd-client.js';
import { EtcdSubnetRegistry } from '../../ipam/etcd-registry.js';
import { WeftError } from '../../ipam/errors.js';
import { applyGrace, EMPTY_GRACE } from '../../ipam/lease-grace.js';
import { LeaseWatcher } from '../../ipam/lease-watcher.js';
import { SubnetManager } from '../../ipam/subnet-manager.js';
import type { Lease, NetworkConfig } from '../../ipam/types.js';
import { overlayMtu, type Backend } from '../../encap/backend.js';
import { applyMasquerade } from '../../encap/masquerade.js';
import { openNetlink, type Netlink } from '../../encap/netlink/index.js';
import { procSysctl } from '../../encap/sysctl.js';
import { createVxlanBackend } from '../../encap/vxlan/index.js';
import { startAttachments, type Attachments } from '../attachments/wire.js';
import { socketPathOf } from '../api/client.js';
import { cniRoute } from '../api/cni-route.js';
import { startApiServer } from '../api/server.js';
import type { AgentStatus } from '../api/types.js';
import { cniInstallOptionsFrom, installCni } from '../cni-install.js';
import { cniService } from '../cni-service.js';
import type { FlagValues } from '../flags.js';
import { startHealthServer } from '../health.js';
import { detectUnderlay } from '../host-info.js';
import { componentLogger } from '../log.js';
import { waitForNetworkConfig } from '../network-config-source.js';
import { etcdOptionsFrom, subnetFileFrom } from '../options.js';
import { previousSubnet, saveSubnet, writeSubnetEnv } from '../state.js';

function sameSubnet(a: Lease, b: Lease): boolean {
  return a.subnet.addr === b.subnet.addr && a.subnet.len === b.subnet.len;
}

function createBackend(cfg: NetworkConfig, netlink: Netlink, underlay: { iface: string; publicIP: string; mtu: number }, log: Logger): Backend {
  if (cfg.backend.type !== 'vxlan') {
    throw new WeftError('INVALID_CONFIG', `invalid network config: Backend.Type: "${cfg.backend.type}" is not available in this version of weft yet; use "vxlan"`, { field: 'Backend.Type' });
  }
  return createVxlanBackend({ netlink, config: cfg, underlay, sysctl: procSysctl, log });
}

export async function runAgent(v: FlagValues, root: Logger): Promise<number> {
  const log = componentLogger(root, 'agent');
  const stop = new AbortController();
  const stateDir = v['state-dir'] as string;
  const runDir = v['run-dir'] as string;
  const subnetFile = subnetFileFrom(v);
  const prefix = (v['etcd-prefix'] as string).replace(/\/+$/, '');
  const ipMasq = v['ip-masq'] as boolean;

  const underlay = detectUnderlay({ iface: v['iface'] as string | undefined, publicIP: v['public-ip'] as string | undefined });
  log.info(underlay, 'underlay');

  const etcdOpts = etcdOptionsFrom(v);
  const registry = new EtcdSubnetRegistry(createEtcdClient(etcdOpts), prefix, etcdOpts.endpoints);

  // What the agent knows; read by status, readiness and the attachment service.
  let config: NetworkConfig | undefined;
  let mtu: number | undefined;
  let lease: Lease | undefined;
  let subnetEnvWritten = false;
  let leasesKnown = false;
  let dataplaneReady = false;
  let revision = 0;
  let manager: SubnetManager | undefined;
  let watcher: LeaseWatcher | undefined;
  let backend: Backend | undefined;
  let netlink: Netlink | undefined;
  let health: Server | undefined;

  const notReady = (): string[] => [
    ...(lease === undefined ? ['subnet lease'] : []),
    ...(subnetEnvWritten ? [] : ['subnet.env']),
    ...(leasesKnown ? [] : ['lease list']),
    ...(dataplaneReady ? [] : ['data plane']),
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

  const attachments: Attachments = await startAttachments({
    stateDir,
    log: componentLogger(root, 'attach'),
    network: () => (lease && mtu !== undefined ? { subnet: lease.subnet, mtu } : undefined),
  });
  const api = await startApiServer(
    socketPathOf(runDir),
    {
      'GET /v1/status': async () => status(),
      ...attachments.routes,
      'POST /v1/cni': cniRoute(cniService({ attachments: attachments.service, notReady, mtu: () => mtu })),
    },
    componentLogger(root, 'api'),
  );
  const listen = v['healthz-listen'] as string;
  if (listen !== '') health = await startHealthServer(listen, { notReady }, componentLogger(root, 'health'));

  const closeAll = async (): Promise<void> => {
    clearTimeout(graceTimer);
    await watcher?.stop();
    await backend?.close();
    netlink?.close();
    registry.close();
    health?.close();
    api.close();
    attachments.close();
  };

  // A remote whose key vanished stays programmed for --lease-grace (see ipam/lease-grace.ts).
  const graceMs = (v['lease-grace'] as number) * 1000;
  let grace = EMPTY_GRACE;
  let graceTimer: NodeJS.Timeout | undefined;

  /** One reconcile pass over the current picture; passes are serialized by the backend. */
  const reconcile = async (why: string): Promise<void> => {
    if (lease === undefined || !leasesKnown || backend === undefined || stop.signal.aborted) return;
    const local = lease;
    const step = applyGrace(grace, watcher?.current() ?? [], systemClock.now(), graceMs);
    grace = step.state;
    clearTimeout(graceTimer);
    if (step.wakeAt !== undefined) {
      graceTimer = setTimeout(() => void reconcile('lease grace period over'), Math.max(0, step.wakeAt - systemClock.now()) + 1);
      graceTimer.unref();
    }
    const remotes = step.leases.filter((l) => !sameSubnet(l, local));
    try {
      const report = await backend.reconcile(local, remotes);
      if (report === undefined || report.failed.length === 0) {
        if (!dataplaneReady) log.info({ why, remotes: remotes.length }, 'data plane programmed');
        dataplaneReady = true;
      }
    } catch (e) {
      log.error({ err: (e as Error).message, why }, 'data plane reconcile failed; retrying at the next resync');
    }
  };

  const shutdown = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      log.info({ signal: sig }, 'stopping; kernel state and the subnet lease stay for the next start');
      stop.abort();
      void (async () => {
        if (v['release-on-exit'] === true) {
          await manager?.release().catch((e: unknown) => log.error({ err: (e as Error).message }, 'could not release the subnet lease'));
        } else {
          manager?.stop();
        }
        await closeAll();
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

    netlink = await openNetlink();
    backend = createBackend(cfg, netlink, underlay, componentLogger(root, cfg.backend.type));
    const backendData = await backend.leaseData();
    await applyMasquerade({ enabled: ipMasq, network: cfg.network }).catch((e: unknown) => {
      if (ipMasq) throw e;
      // Disabled and nft missing or no table: nothing to remove.
      log.debug({ err: (e as Error).message }, 'no masquerade table to remove');
    });

    // The watcher starts first: the subnet is chosen from the set it holds (no list per acquire).
    const leaseWatcher = new LeaseWatcher({
      registry,
      clock: systemClock,
      log: componentLogger(root, 'watch'),
      checkIntervalMs: (v['watch-check-interval'] as number) * 1000,
    });
    watcher = leaseWatcher;
    leaseWatcher.subscribe((leases, rev) => {
      leasesKnown = true;
      revision = rev;
      manager?.verify(leases);
      log.debug({ leases: leases.length, revision: rev }, 'lease set');
      void reconcile('lease set changed');
    });
    leaseWatcher.start();
    await leaseWatcher.ready();

    manager = new SubnetManager({
      known: () => leaseWatcher.known(),
      registry,
      clock: systemClock,
      log: componentLogger(root, 'subnets'),
      random: Math.random,
      config: cfg,
      attrs: { publicIP: underlay.publicIP, backendType: cfg.backend.type, backendData },
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
      void reconcile('lease changed');
    });
    await manager.acquire();

    // The periodic pass heals what someone changed by hand (a deleted route, a flushed FDB).
    const resyncMs = (v['resync-interval'] as number) * 1000;
    void (async () => {
      while (!stop.signal.aborted) {
        await systemClock.sleep(resyncMs, stop.signal);
        await reconcile('resync');
      }
    })();

    if (v['install-cni'] === true) {
      while (notReady().length > 0 && !stop.signal.aborted) await systemClock.sleep(200, stop.signal);
      if (stop.signal.aborted) return;
      const installed = await installCni(cniInstallOptionsFrom(v));
      log.info(installed, 'CNI plugin and conflist installed');
    }
  };

  const failed = run().then(
    () => undefined,
    (e: unknown) => e,
  );
  const first = await Promise.race([shutdown.then((code) => ({ code })), failed.then((err) => ({ err }))]);
  if ('code' in first) return first.code;
  if (first.err === undefined || stop.signal.aborted) return shutdown;
  stop.abort();
  manager?.stop();
  await closeAll();
  throw first.err;
}
