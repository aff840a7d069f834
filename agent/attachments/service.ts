// The attachment service: the one implementation behind `weft attach`, CNI
// ADD/DEL/CHECK and Docker's Join/Leave. It orders three things that each
// have their own module: the address pool (ipam/address-pool), the kernel
// plumbing (encap/plumb) and the attachment records (./store).
//
// attach:  validate → reserve the address (on disk) → plumb → record → reply.
//          A plumbing failure releases the address, so a failed attach leaves
//          neither a veth nor a reservation.
// detach:  release the address FIRST, unconditionally, then delete the veth,
//          then the record. Idempotent: an unknown attachment is a success, and
//          it works when the namespace is already gone. Releasing first means a
//          crash half-way leaks at most a veth (found again by its
//          deterministic name), never an address.
//
// A duplicate attach for the same (containerId, ifname) — a retried ADD —
// returns the existing attachment unchanged if it is still intact (same
// namespace, every piece CHECK looks at present, address in the current
// subnet, and no different ip/mac asked for). Otherwise the new request wins:
// whatever is left of the old one (its veth, found by its name, which is a hash
// of the key) is deleted and the pair is made again, keeping the key's address
// when it is still valid. This makes a retry after a crash (between "plumb" and
// "record", or half-way through a detach) converge instead of failing with
// "File exists", and a container restarted into a new namespace without a DEL
// gets working networking rather than a CONFLICT.
//
// Operations on the same key are serialised (a per-key lock); different keys
// run in parallel, the pool serialising only the address choice.
//
// Docker's remote driver splits one attach in two protocols (agent/cnm): its
// IPAM reserves the address first (`reserve`, released by `release`), its Join
// then asks for a `handoff` attachment (the container end left in the host
// namespace for dockerd to move) and its Leave detaches with `keepAddress`,
// because the address stays Docker's until its IPAM ReleaseAddress.

import type { Logger } from 'pino';
import { formatCidr, formatIp, parseIp } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import { type AddressPool, type Reservation, gatewayOf } from '../../ipam/address-pool.js';
import type { Cidr } from '../../ipam/types.js';
import type { HandoffSpec, Plumbed, PlumbSpec } from '../../encap/plumb.js';
import { handoffIfNameFor, hostIfNameFor } from '../../encap/plumb.js';
import type { Attachment, AttachmentList, CheckReply, DetachReply } from '../api/types.js';
import { type AttachmentStore, keyString } from './store.js';
import { type AttachmentKey, type AttachParams, parseAttachRequest, parseDetachRequest } from './validate.js';
import { isManaged } from './sweep-plan.js';

/** What the service needs from the host: the subnet it holds and the overlay MTU. */
export interface HostNetwork {
  readonly subnet: Cidr;
  readonly mtu: number;
}

export type PlumbRequest = Omit<PlumbSpec, 'hostNetlink'>;

/** The kernel side, as an interface so the service is unit-tested with a fake. */
export interface Plumber {
  assertNetns(path: string): Promise<void>;
  plumb(spec: PlumbRequest): Promise<Plumbed>;
  /** A pair whose container end stays in the host namespace under `peerName` (Docker moves it). */
  plumbHandoff(spec: Omit<HandoffSpec, 'hostNetlink'>): Promise<Plumbed>;
  /** Idempotent; false when there was nothing to delete. */
  unplumb(hostIfName: string): Promise<boolean>;
  /** What is missing (empty when intact). */
  inspect(spec: Omit<PlumbRequest, 'mac'>): Promise<string[]>;
}

export interface AttachmentServiceOptions {
  readonly pool: AddressPool;
  readonly store: AttachmentStore;
  readonly plumber: Plumber;
  /** undefined until the agent holds a subnet lease. */
  readonly network: () => HostNetwork | undefined;
  /** Default weft0. */
  readonly bridge?: string;
  readonly log: Logger;
  readonly now?: () => Date;
}

export const DEFAULT_BRIDGE = 'weft0';
const DEFAULT_ROUTE = '0.0.0.0/0';

/** What happened to an attachment; DNS registers names from these, so the front doors need not know DNS. */
export interface AttachmentEvent {
  readonly kind: 'attached' | 'detached';
  readonly attachment: Attachment;
}
export type AttachmentListener = (ev: AttachmentEvent) => void;

export class AttachmentService {
  private readonly bridge: string;
  private readonly locks = new Map<string, { readonly key: AttachmentKey; readonly tail: Promise<unknown> }>();
  private readonly listeners = new Set<AttachmentListener>();
  private readonly managedPrefixes = new Set<string>();

  constructor(private readonly o: AttachmentServiceOptions) {
    this.bridge = o.bridge ?? DEFAULT_BRIDGE;
  }

  /** Calls fn after every attach that recorded an attachment and every detach that removed one; returns an unsubscribe. */
  subscribe(fn: AttachmentListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(ev: AttachmentEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (e) {
        // A listener's bug must not turn a done attach into a failed one.
        this.o.log.error({ err: (e as Error).message, kind: ev.kind }, 'attachment listener failed');
      }
    }
  }

  /** Runs fn after every earlier operation on the same key; the map holds only keys in use. */
  private withKey<T>(k: AttachmentKey, fn: () => Promise<T>): Promise<T> {
    const id = keyString(k);
    const prev = this.locks.get(id)?.tail ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, { key: { containerId: k.containerId, ifname: k.ifname }, tail });
    void tail.then(() => {
      if (this.locks.get(id)?.tail === tail) this.locks.delete(id);
    });
    return run;
  }

  /** Keys with an operation queued or in flight: what the sweep must not touch. */
  inFlight(): AttachmentKey[] {
    return [...this.locks.values()].map((l) => l.key);
  }

  /** Every address reservation, with or without a record (for the sweep). */
  reservations(): Reservation[] {
    return this.o.pool.list(undefined);
  }

  /**
   * Keys under this containerId prefix belong to a runtime that manages them itself (Docker: its
   * IPAM holds addresses without records from RequestAddress to ReleaseAddress, and its sandbox
   * paths live in dockerd's mount namespace). Neither the sweep nor CNI GC takes their record-less
   * reservations for leftovers, and the sweep frees their attachments only when the veth is gone.
   */
  runtimeManaged(containerIdPrefix: string): void {
    this.managedPrefixes.add(containerIdPrefix);
  }

  runtimeManagedPrefixes(): string[] {
    return [...this.managedPrefixes];
  }

  /** Whether a key belongs to a runtime that manages it itself (see runtimeManaged). */
  isRuntimeManaged(k: AttachmentKey): boolean {
    return isManaged(k, this.runtimeManagedPrefixes());
  }

  private requireNetwork(): HostNetwork {
    const net = this.o.network();
    if (net === undefined) throw new WeftError('UNAVAILABLE', 'the agent holds no subnet lease yet; try again in a moment');
    return net;
  }

  private spec(a: Pick<Attachment, 'netns' | 'ifname' | 'ip' | 'gateway' | 'mtu' | 'hostIfName'> & { routes?: Attachment['routes'] }): Omit<PlumbRequest, 'mac'> {
    const [ip, len] = a.ip.split('/');
    const defaultRoute = a.routes === undefined || a.routes.some((r) => r.dst === DEFAULT_ROUTE);
    return { netnsPath: a.netns, ifname: a.ifname, address: { ip: ip!, prefixLen: Number(len) }, gateway: a.gateway, mtu: a.mtu, bridge: this.bridge, hostIfName: a.hostIfName, defaultRoute };
  }

  attach(body: unknown): Promise<Attachment> {
    const req = parseAttachRequest(body);
    return this.withKey(req, () => this.attachLocked(req));
  }

  private async attachLocked(req: AttachParams): Promise<Attachment> {
    const net = this.requireNetwork();
    // Before reserving: a namespace that is not there must cost nothing. A handoff's namespace may
    // not exist yet: dockerd's runc makes it after Join, and dockerd moves the interface in then.
    if (req.handoff !== true) await this.o.plumber.assertNetns(req.netns);
    const log = this.o.log.child({ containerId: req.containerId, ifname: req.ifname });
    const existing = this.o.store.get(req);
    // A handoff end is configured by the runtime after we answer: nothing to compare, always made afresh.
    if (existing !== undefined && req.handoff !== true && (await this.intact(existing, req, net))) {
      log.debug('attach: already attached and intact');
      return existing;
    }
    const { reservation, fresh } = await this.o.pool.allocate(net.subnet, req, req.ip);
    const hostIfName = hostIfNameFor(req.containerId, req.ifname);
    const gateway = formatIp(gatewayOf(net.subnet));
    const ip = `${reservation.ip}/${net.subnet.len}`;
    let plumbed = false;
    try {
      // The name is derived from this key (whose lock we hold), so a link by that name is a leftover
      // of this key: a crash before the record or during a detach, or an attachment being replaced.
      if (await this.o.plumber.unplumb(hostIfName)) log.info({ hostIfName, fresh }, 'deleted a leftover veth of this attachment');
      const spec = this.spec({ netns: req.netns, ifname: req.ifname, ip, gateway, mtu: net.mtu, hostIfName });
      const handoffIfName = req.handoff === true ? handoffIfNameFor(hostIfName) : undefined;
      const mac = req.mac ? { mac: req.mac } : {};
      const made =
        handoffIfName === undefined
          ? await this.o.plumber.plumb({ ...spec, ...mac })
          : await this.o.plumber.plumbHandoff({ hostIfName, peerName: handoffIfName, mtu: net.mtu, bridge: this.bridge, ...mac });
      plumbed = true;
      const attachment: Attachment = {
        containerId: req.containerId,
        ifname: req.ifname,
        netns: req.netns,
        ...(req.name ? { name: req.name } : {}),
        ...(req.network ? { network: req.network } : {}),
        ...(req.podNamespace ? { podNamespace: req.podNamespace } : {}),
        ip,
        gateway,
        mac: made.mac,
        mtu: net.mtu,
        hostIfName,
        ...(handoffIfName ? { handoffIfName } : {}),
        // A second interface in the namespace finds the first one's default route and adds none.
        routes: made.defaultRoute ? [{ dst: DEFAULT_ROUTE, gw: gateway }] : [],
        createdAt: (this.o.now?.() ?? new Date()).toISOString(),
      };
      await this.o.store.put(attachment);
      log.info({ ip, hostIfName, netns: req.netns }, 'attached');
      this.emit({ kind: 'attached', attachment });
      return attachment;
    } catch (e) {
      log.warn({ err: (e as Error).message, ip }, 'attach failed; undoing');
      // Undo in the detach order: the address first, so nothing is ever leaked that could be handed out twice.
      // A handoff's address was reserved by Docker's IPAM and stays until its ReleaseAddress.
      if (req.handoff !== true) await this.o.pool.release(req).catch((err: unknown) => log.error({ err: (err as Error).message }, 'cannot release the address of a failed attach'));
      // plumb() undoes its own partial work; a veth of that name it did not make (EEXIST) is not ours to delete.
      if (plumbed) await this.o.plumber.unplumb(hostIfName).catch(() => undefined);
      await this.o.store.delete(req).catch(() => undefined);
      throw e;
    }
  }

  /** Whether a recorded attachment answers this request as is (see the header). */
  private async intact(a: Attachment, req: AttachParams, net: HostNetwork): Promise<boolean> {
    if (a.netns !== req.netns || a.mtu !== net.mtu) return false;
    if (!a.ip.endsWith(`/${net.subnet.len}`) || this.o.pool.get(req)?.subnet !== formatCidr(net.subnet)) return false;
    if (req.ip !== undefined && a.ip !== `${formatIp(req.ip)}/${net.subnet.len}`) return false;
    if (req.mac !== undefined && a.mac !== req.mac) return false;
    return (await this.o.plumber.inspect(this.spec(a))).length === 0;
  }

  /** `keepAddress`: for Docker's Leave, whose address its IPAM releases later (not an API option). */
  detach(body: unknown, opts: { keepAddress?: boolean } = {}): Promise<DetachReply> {
    const key = parseDetachRequest(body);
    return this.withKey(key, () => this.detachLocked(key, opts));
  }

  /**
   * For the sweep and CNI GC: detaches `key` only if `still(record, reservation)` holds under the
   * key's lock, so an attach that ran since the caller looked is never undone. undefined when skipped.
   */
  detachIf(key: AttachmentKey, still: (record: Attachment | undefined, reservation: Reservation | undefined) => boolean, why: string): Promise<DetachReply | undefined> {
    return this.withKey(key, async () => {
      if (!still(this.o.store.get(key), this.o.pool.get(key))) return undefined;
      this.o.log.info({ ...key, why }, 'freeing a leftover attachment');
      // A runtime-managed key's address is the runtime's to release (Docker's IPAM ReleaseAddress).
      return this.detachLocked(key, { keepAddress: this.isRuntimeManaged(key) });
    });
  }

  private async detachLocked(key: AttachmentKey, opts: { keepAddress?: boolean } = {}): Promise<DetachReply> {
    const released = opts.keepAddress === true ? undefined : await this.o.pool.release(key);
    const record = this.o.store.get(key);
    const deleted = await this.o.plumber.unplumb(record?.hostIfName ?? hostIfNameFor(key.containerId, key.ifname));
    await this.o.store.delete(key);
    if (record !== undefined) this.emit({ kind: 'detached', attachment: record });
    this.o.log.info({ ...key, released: released?.ip, vethDeleted: deleted }, record || released ? 'detached' : 'detach: nothing attached');
    return { ...key, ...(released ? { released: released.ip } : {}) };
  }

  /**
   * Deletes a weft veth that no record, reservation or operation in flight owns (the sweep's last
   * kind of leftover). Checked here, synchronously before the delete is sent, because the owner
   * of a hashed name cannot be locked by key. False when it is owned or was already gone.
   */
  async deleteStrayVeth(name: string): Promise<boolean> {
    const records = this.o.store.list();
    const owners = [...records, ...this.reservations(), ...this.inFlight()];
    if (owners.some((k) => hostIfNameFor(k.containerId, k.ifname) === name) || records.some((a) => a.hostIfName === name)) return false;
    const deleted = await this.o.plumber.unplumb(name);
    if (deleted) this.o.log.info({ hostIfName: name }, 'deleted a veth that no attachment owns');
    return deleted;
  }

  check(body: unknown): Promise<CheckReply> {
    const key = parseDetachRequest(body);
    return this.withKey(key, async () => {
      const a = this.o.store.get(key);
      if (a === undefined) {
        throw new WeftError('NOT_FOUND', `container ${key.containerId} has no attachment ${key.ifname}`, { ...key });
      }
      const missing = await this.o.plumber.inspect(this.spec(a));
      const net = this.o.network();
      const held = this.o.pool.get(key);
      if (held === undefined || `${held.ip}/${held.subnet.split('/')[1]}` !== a.ip) missing.push(`address reservation for ${a.ip}`);
      else if (net === undefined || held.subnet !== formatCidr(net.subnet)) missing.push(`${a.ip} in the host's current subnet`);
      return { ok: missing.length === 0, missing, attachment: a };
    });
  }

  /** The host's subnet, overlay MTU and gateway (the bridge's address); UNAVAILABLE before the lease is held. */
  hostNetwork(): HostNetwork & { gateway: string } {
    const net = this.requireNetwork();
    return { ...net, gateway: formatIp(gatewayOf(net.subnet)) };
  }

  /** Reserves an address for `key` without attaching anything (Docker's IPAM RequestAddress). */
  reserve(key: AttachmentKey, ip?: string): Promise<Reservation> {
    let requested: number | undefined;
    if (ip !== undefined) {
      try {
        requested = parseIp(ip);
      } catch {
        throw new WeftError('INVALID_ARGUMENT', `ip: "${ip}" is not an IPv4 address`, { field: 'ip', value: ip });
      }
    }
    return this.withKey(key, async () => (await this.o.pool.allocate(this.requireNetwork().subnet, key, requested)).reservation);
  }

  /** Gives `key`'s address back (Docker's IPAM ReleaseAddress); idempotent. */
  release(key: AttachmentKey): Promise<Reservation | undefined> {
    return this.withKey(key, () => this.o.pool.release(key));
  }

  list(): AttachmentList {
    const net = this.o.network();
    const current = net === undefined ? undefined : formatCidr(net.subnet);
    const attachments = this.o.store.list().map((a) => ({ ...a, stale: current === undefined || this.o.pool.get(a)?.subnet !== current }));
    attachments.sort((a, b) => a.containerId.localeCompare(b.containerId) || a.ifname.localeCompare(b.ifname));
    return { ...(current ? { subnet: current } : {}), attachments };
  }
}
