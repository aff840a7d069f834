// Public surface of the udp data plane: the backend the agent constructs, and
// the pure pieces (planner, diff, key derivation, peer-table codec, epoch) for tests and tools.
export { createUdpBackend, type UdpBackend, type UdpBackendOptions, type UdpKeySource, type UdpReconcileReport } from './backend.js';
export { planUdp, TUN_NAME, type UdpPlan, type UdpPeer, type UdpPlanInput } from './plan.js';
export { diffUdp, type UdpOp, type UdpActual } from './reconcile.js';
export { peerKeys, SEAL_PURPOSE, MAX_KEYS, type Keyring, type DeriveKey, type PeerKey } from './keys.js';
export { encodePeerTable, type PeerEntry } from './peer-table.js';
export { nextEpoch, parseEpoch, takeEpoch, EPOCH_FILE } from './epoch.js';
export { openNativeDataPath, type UdpDataPath, type DataPathOptions, type OpenDataPath } from './forwarder.js';
