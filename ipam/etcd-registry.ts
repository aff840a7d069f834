// SubnetRegistry over etcd, flannel's key layout:
//   <prefix>/config                 network config (JSON, flannel field names)
//   <prefix>/subnets/10.42.7.0-24   {"PublicIP","BackendType","BackendData"}, bound to an etcd lease
// Every method is one etcd round trip (a transaction where a race matters),
// decoding goes through lease-codec, and every failure surfaces as a WeftError.

import type { Etcd3, IKeyValue, Lease as EtcdLease, Watcher } from 'etcd3';
import { etcdUnavailable } from './etcd-client.js';
import { decodeLease, encodeLeaseAttrs, leaseKey, subnetsPrefix } from './lease-codec.js';
import type {
  LeaseEvent,
  LeaseGrant,
  LeaseList,
  LeaseStats,
  LeaseWatchCallbacks,
  SkippedLease,
  SubnetRegistry,
  WatchHandle,
} from './subnet-registry.js';
import type { Cidr, Lease, LeaseAttrs } from './types.js';

/** The key range `[start, end)` holding every key that begins with `prefix`. */
function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return { key, range_end: end };
}

function kvMeta(kv: IKeyValue): { leaseId: string; modRevision: number } {
  return { leaseId: String(kv.lease ?? '0'), modRevision: Number(kv.mod_revision ?? 0) };
}

export class EtcdSubnetRegistry implements SubnetRegistry {
  readonly prefix: string;
  private readonly subnetsPrefix: string;

  constructor(
    private readonly client: Etcd3,
    prefix: string,
    private readonly endpoints: readonly string[],
  ) {
    this.prefix = prefix.replace(/\/+$/, '');
    this.subnetsPrefix = subnetsPrefix(this.prefix);
  }

  private keyOf(subnet: Cidr): string {
    return leaseKey(this.prefix, subnet);
  }

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw etcdUnavailable(op, e, this.endpoints);
    }
  }

  /** Decodes one key-value pair; a garbage value becomes a skip, never an exception. */
  private decode(kv: IKeyValue): { lease: Lease } | { skipped: SkippedLease } {
    const key = kv.key.toString();
    try {
      return { lease: decodeLease(key, kv.value.toString(), kvMeta(kv), this.prefix) };
    } catch (e) {
      return { skipped: { key, reason: (e as Error).message } };
    }
  }

  getConfig(): Promise<string | undefined> {
    return this.call('get config', async () => (await this.client.get(`${this.prefix}/config`).string()) ?? undefined);
  }

  putConfig(raw: string): Promise<void> {
    return this.call('put config', async () => {
      await this.client.put(`${this.prefix}/config`).value(raw);
    });
  }

  /**
   * The network's cluster key at `<prefix>/cluster-key`: created as `candidate` if absent (in a
   * transaction, so racing first agents agree on one), else the one stored.
   */
  ensureClusterKey(candidate: string): Promise<string> {
    const key = `${this.prefix}/cluster-key`;
    return this.call('get or create cluster key', async () => {
      const res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(candidate)).else(this.client.get(key)).commit();
      if (res.succeeded) return candidate;
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv === undefined) throw new Error(`${key} vanished while it was read`);
      return kv.value.toString();
    });
  }

  list(): Promise<LeaseList> {
    return this.call('list subnets', async () => {
      const res = await this.client.kv.range(prefixRange(this.subnetsPrefix));
      const leases: Lease[] = [];
      const keys: string[] = [];
      const skipped: SkippedLease[] = [];
      for (const kv of res.kvs) {
        const d = this.decode(kv);
        if ('lease' in d) {
          leases.push(d.lease);
          keys.push(kv.key.toString());
        } else skipped.push(d.skipped);
      }
      return { leases, keys, skipped, revision: Number(res.header.revision) };
    });
  }

  async grant(ttlSeconds: number): Promise<LeaseGrant> {
    // etcd3 opens a keep-alive stream and sends a keep-alive right after the
    // grant, which renews nothing (the TTL is fresh) and, with thousands of
    // hosts starting together, doubles the load while they acquire. The loop
    // starts after a third of the TTL (at most a minute, spread), as etcd3's
    // own interval would have it.
    const lease: EtcdLease = this.client.lease(ttlSeconds, { autoKeepAlive: false });
    const delayMs = Math.min((ttlSeconds * 1000) / 3, 60_000) * (0.5 + Math.random() / 2);
    let keeper: NodeJS.Timeout | undefined;
    // Attach at once: etcd3 emits 'lost' for a failed grant too, and an
    // unhandled 'error'-like emit must not be missed before onLost is called.
    let lostErr: Error | undefined;
    const handlers: ((err: Error) => void)[] = [];
    lease.on('lost', (err) => {
      clearTimeout(keeper);
      if (lostErr !== undefined) return;
      lostErr = err;
      for (const h of handlers) h(err);
    });
    const id = await this.call('grant lease', () => lease.grant());
    // keepalive() is etcd3's own loop, not in its typings; autoKeepAlive: false only defers it.
    keeper = setTimeout(() => (lease as unknown as { keepalive(): void }).keepalive(), delayMs);
    keeper.unref();
    return {
      id,
      onLost(handler) {
        if (lostErr !== undefined) handler(lostErr);
        else handlers.push(handler);
      },
      release: () => {
        clearTimeout(keeper);
        lease.release();
      },
      revoke: () => {
        clearTimeout(keeper);
        return this.call('revoke lease', () => lease.revoke());
      },
    };
  }

  create(subnet: Cidr, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined> {
    const key = this.keyOf(subnet);
    return this.call(`create ${key}`, async () => {
      const res = await this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(encodeLeaseAttrs(attrs)).lease(leaseId))
        .commit();
      return res.succeeded ? Number(res.header.revision) : undefined;
    });
  }

  rebind(lease: Lease, attrs: LeaseAttrs, leaseId: string): Promise<number | undefined> {
    const key = this.keyOf(lease.subnet);
    return this.call(`rebind ${key}`, async () => {
      const res = await this.client
        .if(key, 'Mod', '==', lease.modRevision)
        .then(this.client.put(key).value(encodeLeaseAttrs(attrs)).lease(leaseId))
        .commit();
      return res.succeeded ? Number(res.header.revision) : undefined;
    });
  }

  remove(subnet: Cidr, leaseId: string): Promise<boolean> {
    const key = this.keyOf(subnet);
    return this.call(`delete ${key}`, async () => {
      const res = await this.client.if(key, 'Lease', '==', leaseId).then(this.client.delete().key(key)).commit();
      return res.succeeded;
    });
  }

  revokeId(leaseId: string): Promise<void> {
    if (leaseId === '0') return Promise.resolve();
    return this.call(`revoke lease ${leaseId}`, async () => {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: leaseId });
      } catch (e) {
        // Already expired or revoked: exactly what we wanted.
        if (/not found|EtcdLeaseInvalid/i.test(String((e as Error).message) + (e as Error).name)) return;
        throw e;
      }
    });
  }

  async watch(fromRevision: number, cb: LeaseWatchCallbacks): Promise<WatchHandle> {
    const watcher: Watcher = await this.call('watch subnets', () =>
      this.client.watch().prefix(this.subnetsPrefix).startRevision(String(fromRevision)).create(),
    );
    let broken = false;
    const breakOnce = (err: Error): void => {
      if (broken) return;
      broken = true;
      cb.onBroken(err);
    };
    watcher.on('data', (res) => {
      if (broken) return; // closed or ended: a relist has taken over
      const events: LeaseEvent[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        if (ev.type === 'Delete') {
          events.push({ type: 'delete', key });
          continue;
        }
        const d = this.decode(ev.kv);
        events.push('lease' in d ? { type: 'put', key, lease: d.lease } : { type: 'invalid', key, reason: d.skipped.reason });
      }
      if (events.length > 0) cb.onEvents(events, Number(res.header.revision));
    });
    watcher.on('error', (err) => breakOnce(err));
    watcher.on('end', () => breakOnce(new Error('watch ended')));
    return {
      close: async () => {
        const wasBroken = broken;
        broken = true;
        // A watch etcd already ended (compacted, cancelled) has no ID left to
        // cancel, and etcd3's cancel() would wait forever for the answer: the
        // relist behind it would never run.
        if (wasBroken) return;
        await watcher.cancel().catch(() => undefined);
      },
    };
  }

  stats(): Promise<LeaseStats> {
    return this.call('count subnets', async () => {
      // One small request: the key with the newest mod revision (sorted server-side, limit 1, no
      // value), while `count` still reports every key in the range. Not count_only with
      // min_mod_revision: etcd counts before that filter, so the count would ignore it.
      const res = await this.client.kv.range({ ...prefixRange(this.subnetsPrefix), keys_only: true, limit: 1, sort_order: 'Descend', sort_target: 'Mod' });
      return { count: Number(res.count), maxModRevision: Number(res.kvs[0]?.mod_revision ?? 0), revision: Number(res.header.revision) };
    });
  }

  close(): void {
    this.client.close();
  }
}
