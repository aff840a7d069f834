// The test lab's public surface: hosts made of network namespaces around a
// real etcd, for integration tests, benchmarks and the demo. See lab.ts for
// the layout and cleanup.ts for how leftovers of crashed runs are removed.
export { createLab, assertRoot, hostIp, LabHost, LabContainer } from './lab.js';
export type { Lab, CreateLabOptions } from './lab.js';
export { UNDERLAY_BRIDGE, UNDERLAY_GATEWAY, UNDERLAY_PREFIX_LEN, HOST_IFACE, ETCD_CLIENT_PORT, MAX_HOSTS } from './lab.js';
export { startEtcd, freePort, etcdctlTlsFlags } from './etcd.js';
export type { EtcdHandle, EtcdTlsFiles, StartEtcdOptions } from './etcd.js';
export { makeTestCerts } from './certs.js';
export type { TestCerts, CertPair } from './certs.js';
export { startHolder } from './holder.js';
export type { Holder, HolderTarget } from './holder.js';
export { cleanupLeftovers, listLabNetns, installExitHandlers, isPidAlive } from './cleanup.js';
export type { CleanupReport } from './cleanup.js';
export { run, LabProcess, ExecError } from './exec.js';
export type { ExecOptions, ExecResult, SpawnOptions, ExitStatus } from './exec.js';
export { Namespace } from './netns.js';
export { LAB_PREFIX, newRunId, labName } from './names.js';
export { pollUntil } from './poll.js';
export { dig } from './dig.js';
export type { DigResult } from './dig.js';
