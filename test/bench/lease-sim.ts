// Simulated hosts for the lease benchmark, run inside a lab host (where etcd
// is reachable): N SubnetManagers acquire concurrently through one etcd
// client, each choosing from the lease set a watcher holds, as a real agent
// does; then, as the baseline, N bare create-if-absent transactions of the
// same size are made under another prefix, and then N pairs of what each host
// cannot do without, its own etcd lease grant followed by the create-if-absent
// bound to it (the floor of any per-host-lease design, flannel's included).
// Prints one JSON line of timings.
// The simulated hosts share one watcher (a real host has its own, which lists
// once at start): its list and watch are inside the timed span.
// Usage: node lease-sim.js --etcd URL --count N --prefix P [--hold] [--no-baseline]
// (also used by integration tests to fill etcd with thousands of real leases fast)
// (--hold: keep the leases alive until stdin closes, for benchmarks that go on
// watching them).

import { pino } from 'pino';
import { systemClock } from '../../ipam/clock.js';
import { createEtcdClient } from '../../ipam/etcd-client.js';
import { EtcdSubnetRegistry } from '../../ipam/etcd-registry.js';
import { encodeLeaseAttrs } from '../../ipam/lease-codec.js';
import { LeaseWatcher } from '../../ipam/lease-watcher.js';
import { parseNetworkConfig } from '../../ipam/network-config.js';
import { SubnetManager } from '../../ipam/subnet-manager.js';
import { percentile } from './types.js';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const hex = (n: number): string => n.toString(16).padStart(2, '0');
const etcd = arg('etcd');
const count = Number(arg('count'));
const prefix = arg('prefix');
const client = createEtcdClient({ endpoints: [etcd], callTimeoutMs: 60_000 });
const registry = new EtcdSubnetRegistry(client, prefix, [etcd]);
const config = parseNetworkConfig(await registry.getConfig());
const log = pino({ level: 'silent' });

const latencies: number[] = [];
const t0 = performance.now();
const watcher = new LeaseWatcher({ registry, clock: systemClock, log, checkIntervalMs: 3_600_000 });
watcher.start();
await watcher.ready();
const managers = Array.from({ length: count }, (_, i) =>
  new SubnetManager({
    registry,
    clock: systemClock,
    log,
    random: Math.random,
    config,
    // A VtepMAC of its own per host, so that the watching agent programs every one.
    attrs: { publicIP: `198.19.${i >> 8}.${i & 255}`, backendType: 'vxlan', backendData: { VtepMAC: `02:00:00:00:${hex(i >> 8)}:${hex(i & 255)}` } },
    ttlSeconds: 600,
    known: () => watcher.known(),
  }),
);
const subnets = await Promise.all(
  managers.map(async (m) => {
    const s = performance.now();
    const l = await m.acquire();
    latencies.push(performance.now() - s);
    return `${l.subnet.addr}/${l.subnet.len}`;
  }),
);
const weftMs = performance.now() - t0;
const distinct = new Set(subnets).size;

// Baseline: the same number of create-if-absent writes of a lease-sized value, no choosing.
const lease = client.lease(600);
let baselineMs = NaN;
let floorMs = NaN;
if (!process.argv.includes('--no-baseline')) {
  const id = await lease.grant();
  const value = encodeLeaseAttrs({ publicIP: '198.19.0.1', backendType: 'vxlan', backendData: { VtepMAC: '02:00:00:00:00:01' } });
  const b0 = performance.now();
  await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const key = `/bench-baseline-${count}/subnets/10.${i >> 8}.${i & 255}.0-24`;
      return client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(id)).commit();
    }),
  );
  baselineMs = performance.now() - b0;
  const f0 = performance.now();
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const own = client.lease(600, { autoKeepAlive: false });
      const ownId = await own.grant();
      const key = `/bench-floor-${count}/subnets/10.${i >> 8}.${i & 255}.0-24`;
      await client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(ownId)).commit();
      own.release();
    }),
  );
  floorMs = performance.now() - f0;
}
latencies.sort((a, b) => a - b);
console.log(JSON.stringify({ count, distinct, weftMs, baselineMs, floorMs, p50: percentile(latencies, 50), p99: percentile(latencies, 99) }));
await watcher.stop();
if (process.argv.includes('--hold')) {
  process.stdin.resume();
  await new Promise((r) => process.stdin.once('end', r));
}
for (const m of managers) m.stop();
lease.release();
client.close();
process.exit(0);
