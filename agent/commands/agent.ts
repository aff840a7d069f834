// `weft agent`: the daemon's wiring, and nothing else. It builds the
// components (each a part with start/stop and the doors it needs injected:
// the etcd registry, the node state, loggers), connects them, starts them in
// order and stops them in reverse. Every decision lives in ipam/ (which
// subnet), encap/ (which kernel objects) or cni-plugin/ (the CNI rules), and
// every fact the agent knows lives in one NodeState.
//
//   underlay → attachments → first attachment sweep (then every
//   --resync-interval) → API socket → health → network config → backend
//   (VTEP MAC, MTU) → subnet lease → subnet.env → first complete lease list →
//   data-plane reconcile (then on every lease change and every
//   --resync-interval) → ready → install-cni, Docker plugin socket
//
// On SIGTERM/SIGINT the agent stops; kernel state and the lease stay, so a
// restart (or SIGKILL and restart) drops no packet.

import { join } from 'node:path';
import type { Logger } from 'pino';
import { createEtcdClient } from '../../ipam/etcd-client.js';
import { EtcdSubnetRegistry } from '../../ipam/etcd-registry.js';
import { systemClock } from '../../ipam/clock.js';
import { cniRoute } from '../api/cni-route.js';
import { cniInstallOptionsFrom } from '../cni-install.js';
import { cniService } from '../cni-service.js';
import { AgentComponents } from '../components/set.js';
import { ApiComponent } from '../components/api.js';
import { AttachmentsComponent } from '../components/attachments.js';
import { CniInstallComponent } from '../components/cni-install.js';
import { DnsComponent } from '../components/dns.js';
import { RecordStore } from '../dns/record-store.js';
import { DataplaneComponent } from '../components/dataplane.js';
import { GossipComponent } from '../components/gossip.js';
import { HealthComponent } from '../components/health.js';
import { LeasesComponent } from '../components/leases.js';
import { SubnetEnvComponent } from '../components/subnet-env.js';
import { CnmComponent } from '../cnm/index.js';
import { recordStoreNames } from '../cnm/dns-registry.js';
import { SweepComponent } from '../components/sweep.js';
import { NodeState } from '../core/node-state.js';
import type { FlagValues } from '../flags.js';
import { detectUnderlay } from '../host-info.js';
import { KeySource } from '../keys/key-source.js';
import { componentLogger } from '../log.js';
import { etcdOptionsFrom, subnetFileFrom } from '../options.js';

export async function runAgent(v: FlagValues, root: Logger): Promise<number> {
  const log = componentLogger(root, 'agent');
  const logFor = (name: string): Logger => componentLogger(root, name);
  const runDir = v['run-dir'] as string;
  const stateDir = v['state-dir'] as string;
  const subnetFile = subnetFileFrom(v);
  const ipMasq = v['ip-masq'] as boolean;

  const underlay = detectUnderlay({ iface: v['iface'] as string | undefined, publicIP: v['public-ip'] as string | undefined });
  log.info(underlay, 'underlay');
  const state = new NodeState(underlay);
  const etcdOpts = etcdOptionsFrom(v);
  const prefix = (v['etcd-prefix'] as string).replace(/\/+$/, '');
  const registry = new EtcdSubnetRegistry(createEtcdClient(etcdOpts), prefix, etcdOpts.endpoints);
  // One keyring for gossip and the sealed udp backend, opened by whichever asks first.
  let keySource: Promise<KeySource> | undefined;
  const openKeys = (signal?: AbortSignal): Promise<KeySource> =>
    (keySource ??= KeySource.open({ keyFile: v['key-file'] as string | undefined, store: registry, clusterKeyName: `${prefix}/cluster-key`, cacheFile: join(stateDir, 'cluster-key'), log: logFor('keys'), ...(signal ? { signal } : {}) }));
  const agent = new AgentComponents(log, () => registry.close());

  const leases = new LeasesComponent({
    state,
    registry,
    prefix,
    stateDir,
    subnetFile,
    ttlSeconds: v['lease-ttl'] as number,
    watchCheckIntervalMs: (v['watch-check-interval'] as number) * 1000,
    releaseOnExit: v['release-on-exit'] === true,
    log: logFor('leases'),
    logFor,
    fail: agent.fail,
  });
  const subnetEnv = new SubnetEnvComponent({ state, stateDir, subnetFile, ipMasq, log: logFor('subnet.env') });
  const dataplane = new DataplaneComponent({ state, ipMasq, resyncMs: (v['resync-interval'] as number) * 1000, graceMs: (v['lease-grace'] as number) * 1000, log: logFor('dataplane'), logFor, stateDir, keys: () => openKeys() });
  leases.addLeaseData(dataplane.leaseData);
  const attachments = new AttachmentsComponent(stateDir, state, logFor('attach'));
  const sweep = new SweepComponent(attachments, state, systemClock, (v['resync-interval'] as number) * 1000, logFor('sweep'));
  const api = new ApiComponent(runDir, state, logFor('api'));
  const health = new HealthComponent(v['healthz-listen'] as string, state, logFor('health'));
  // The DNS records of the cluster; gossip carries them (the store is its delegate), the DNS component serves them.
  const records = new RecordStore({ localId: underlay.publicIP });
  const dns = new DnsComponent({
    state,
    store: records,
    attachments: () => attachments.service,
    stateDir,
    listen: v['dns-listen'] as string,
    domain: v['dns-domain'] as string,
    upstreams: v['dns-upstream'] as string[],
    ttl: v['dns-ttl'] as number,
    upstreamTimeoutMs: v['dns-upstream-timeout'] as number,
    log: logFor('dns'),
  });

  const gossip = new GossipComponent({
    state,
    port: v['gossip-port'] as number,
    openKeys,
    log: logFor('gossip'),
    fail: agent.fail,
  });
  leases.addLeaseData(gossip.leaseData);
  api.addRoutes(gossip.routes);
  // Gossip carries the record store: full state in push-pull, each local change as a broadcast.
  gossip.setDelegate(records);
  records.setBroadcast((msg) => gossip.broadcast(msg));

  api.addRoutes(() => attachments.routes);
  api.addRoutes(() => dns.routes);
  api.addRoutes(() => ({ 'POST /v1/cni': cniRoute(cniService({ attachments: attachments.service, notReady: () => state.notReady(), mtu: () => state.get().mtu, dns: (a) => dns.clientDns(a.gateway) })) }));

  const cnmSocket = v['cnm-socket'] as string;
  // Docker's plugin: marks Docker's keys as runtime-managed as soon as it starts (before the first sweep),
  // serves its socket once the node is ready.
  const docker =
    cnmSocket === ''
      ? undefined
      : new CnmComponent({ socketPath: cnmSocket, stateDir, attachments: () => attachments.service, state, fail: agent.fail, dockerSocket: v['docker-socket'] as string, ...(v['docker-socket'] !== '' ? { names: recordStoreNames(records, logFor('docker')) } : {}), log: logFor('docker') });

  // Start order: the API socket early (a second agent on this run dir fails before touching the
  // kernel), then the parts that wait for etcd in the background; the data plane listens before
  // leases arrive.
  return agent.run([
    attachments,
    ...(docker ? [docker] : []),
    dns,
    sweep,
    api,
    health,
    subnetEnv,
    dataplane,
    leases,
    gossip,
    ...(v['install-cni'] === true ? [new CniInstallComponent(cniInstallOptionsFrom(v), state, logFor('install-cni'), agent.fail)] : []),
  ]);
}
