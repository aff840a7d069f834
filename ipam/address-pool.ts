// The per-host address pool: which container interface holds which address
// of this host's subnet. Three promises, because a double-handed address is a
// silent outage between two containers:
//   - crash-safe: a reservation is written (atomically, fsynced) BEFORE the
//     address is handed out, so an agent killed at any point never gives the
//     same address twice after it restarts;
//   - concurrency-safe: allocations in one agent are serialised by a mutex
//     (one agent per host owns the state dir), so 100 parallel attaches get
//     100 distinct addresses;
//   - never the network, the gateway (the subnet's first address, held by the
//     bridge) or the broadcast address.
//
// Reservations are keyed by (containerId, ifname): allocating again for the
// same key returns the same address (an idempotent ADD), releasing is
// idempotent (an idempotent DEL). Like host-local, the next address is chosen
// round-robin after the last one handed out, so an address just freed is not
// reused at once (a late packet for the old owner must not reach a new one).
//
// The state is one small JSON file (`<state-dir>/addresses/reservations.json`)
// rewritten whole on every change: a /24 pool is a few KB, one file makes a
// change a single atomic rename, and a reader can never see half a change.
// Each reservation records its subnet, so after the host's lease changes
// (lease lost → new subnet) the old ones are reported as stale, not reused.
//
// The decisions (`chooseAddress`, `planAllocate`, `planRelease`) are pure and
// unit-tested on plain data; `AddressPool` only adds the mutex and the I/O.

import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';
import { cidrContains, cidrEquals, formatCidr, formatIp, isHostAddressUsable, lastAddress, parseCidr, parseIp } from './cidr.js';
import { WeftError } from './errors.js';
import type { Cidr } from './types.js';

export interface ReservationKey {
  readonly containerId: string;
  readonly ifname: string;
}

export interface Reservation extends ReservationKey {
  /** The address, dotted quad ("10.42.7.2"). */
  readonly ip: string;
  /** The host subnet it was taken from ("10.42.7.0/24"). */
  readonly subnet: string;
  /** ISO time of the reservation, for operators reading the file. */
  readonly reservedAt: string;
}

/** What the file holds (and what the pure functions transform). */
export interface PoolState {
  readonly version: 1;
  /** Last address handed out, per subnet, where the round-robin resumes. */
  readonly last: Readonly<Record<string, string>>;
  readonly reservations: readonly Reservation[];
}

export const EMPTY_POOL: PoolState = { version: 1, last: {}, reservations: [] };

export function sameKey(a: ReservationKey, b: ReservationKey): boolean {
  return a.containerId === b.containerId && a.ifname === b.ifname;
}

/** The subnet's gateway: its first address, held by the bridge. */
export function gatewayOf(subnet: Cidr): number {
  return (subnet.addr + 1) >>> 0;
}

/** Whether a container may be given `ip`: usable in the subnet and not the gateway. */
export function isAssignable(subnet: Cidr, ip: number): boolean {
  return isHostAddressUsable(subnet, ip) && ip >>> 0 !== gatewayOf(subnet);
}

/**
 * The next free address after `last` (round-robin, wrapping), skipping the
 * network, gateway and broadcast addresses and everything in `reserved`;
 * undefined when the subnet is full. Walks at most one subnet's worth.
 */
export function chooseAddress(subnet: Cidr, reserved: ReadonlySet<number>, last?: number): number | undefined {
  // Assignable addresses are net+2 .. broadcast-1 (none for /31 and /32: the gateway takes one of two).
  if (subnet.len >= 31) return undefined;
  const first = (subnet.addr + 2) >>> 0;
  const end = (lastAddress(subnet) - 1) >>> 0;
  if (end < first) return undefined;
  const count = end - first + 1;
  const start = last !== undefined && last >= first && last <= end ? last - first + 1 : 0;
  for (let i = 0; i < count; i++) {
    const ip = (first + ((start + i) % count)) >>> 0;
    if (!reserved.has(ip)) return ip;
  }
  return undefined;
}

export interface AllocatePlan {
  readonly state: PoolState;
  readonly reservation: Reservation;
  /** False when the key already held this address (nothing to write). */
  readonly fresh: boolean;
}

/**
 * Reserves an address of `subnet` for `key`: the one it already holds there,
 * else `requested` if given (it must be assignable and free), else the next
 * free one. A reservation the key holds in another (stale) subnet is replaced.
 */
export function planAllocate(state: PoolState, subnet: Cidr, key: ReservationKey, now: Date, requested?: number): AllocatePlan {
  const net = formatCidr(subnet);
  const held = state.reservations.find((r) => sameKey(r, key));
  if (held !== undefined && held.subnet === net) {
    if (requested !== undefined && parseIp(held.ip) !== requested) {
      throw new WeftError(
        'CONFLICT',
        `container ${key.containerId} interface ${key.ifname} already holds ${held.ip}, not ${formatIp(requested)}; detach it first`,
        { containerId: key.containerId, ifname: key.ifname, held: held.ip, requested: formatIp(requested) },
      );
    }
    return { state, reservation: held, fresh: false };
  }
  const others = state.reservations.filter((r) => !sameKey(r, key));
  const taken = new Set(others.filter((r) => r.subnet === net).map((r) => parseIp(r.ip)));
  let ip: number;
  if (requested !== undefined) {
    if (!isAssignable(subnet, requested)) {
      throw new WeftError(
        'INVALID_ARGUMENT',
        `ip: ${formatIp(requested)} cannot be given to a container in ${net} (outside it, or its network, gateway or broadcast address)`,
        { field: 'ip', ip: formatIp(requested), subnet: net },
      );
    }
    const owner = others.find((r) => r.subnet === net && parseIp(r.ip) === requested);
    if (owner !== undefined) {
      throw new WeftError('CONFLICT', `ip: ${owner.ip} is already held by container ${owner.containerId} interface ${owner.ifname}`, {
        field: 'ip',
        ip: owner.ip,
        holder: { containerId: owner.containerId, ifname: owner.ifname },
      });
    }
    ip = requested;
  } else {
    const lastText = state.last[net];
    const chosen = chooseAddress(subnet, taken, lastText === undefined ? undefined : parseIp(lastText));
    if (chosen === undefined) {
      throw new WeftError(
        'EXHAUSTED',
        `no free address left in ${net}: all ${taken.size} assignable addresses are reserved; detach unused containers (weft ps lists them)`,
        { subnet: net, reserved: taken.size },
      );
    }
    ip = chosen;
  }
  const reservation: Reservation = { containerId: key.containerId, ifname: key.ifname, ip: formatIp(ip), subnet: net, reservedAt: now.toISOString() };
  return {
    state: { version: 1, last: { ...state.last, [net]: reservation.ip }, reservations: [...others, reservation] },
    reservation,
    fresh: true,
  };
}

/** Drops the key's reservation; `released` is undefined when it held none. */
export function planRelease(state: PoolState, key: ReservationKey): { state: PoolState; released?: Reservation } {
  const released = state.reservations.find((r) => sameKey(r, key));
  if (released === undefined) return { state };
  return { state: { ...state, reservations: state.reservations.filter((r) => r !== released) }, released };
}

/** A reservation as listed: stale when it belongs to a subnet this host no longer holds. */
export interface ListedReservation extends Reservation {
  readonly stale: boolean;
}

export function listReservations(state: PoolState, subnet: Cidr | undefined): ListedReservation[] {
  return state.reservations.map((r) => ({ ...r, stale: subnet === undefined || !isCurrent(r, subnet) }));
}

function isCurrent(r: Reservation, subnet: Cidr): boolean {
  try {
    return cidrEquals(parseCidr(r.subnet), subnet) && cidrContains(subnet, parseIp(r.ip));
  } catch {
    return false;
  }
}

/** Parses the file strictly: a pool file we cannot read is an error, never an empty pool (that would double-hand addresses). */
export function parsePoolState(text: string, where: string): PoolState {
  const bad = (why: string): WeftError =>
    new WeftError('INTERNAL', `address pool ${where} is corrupt (${why}); move it away only after checking which containers hold which address`, { file: where });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const o = raw as Partial<PoolState> | null;
  if (o === null || typeof o !== 'object' || o.version !== 1 || !Array.isArray(o.reservations) || typeof o.last !== 'object' || o.last === null) {
    throw bad('expected {version: 1, last, reservations}');
  }
  for (const r of o.reservations) {
    const ok = r !== null && typeof r === 'object' && ['containerId', 'ifname', 'ip', 'subnet', 'reservedAt'].every((f) => typeof (r as unknown as Record<string, unknown>)[f] === 'string');
    if (!ok) throw bad(`bad reservation ${JSON.stringify(r)}`);
  }
  return { version: 1, last: o.last, reservations: o.reservations };
}

// ---- the stateful pool ------------------------------------------------------

/** Where a state file's text lives; injected so tests can watch the write order. */
export interface StateStorage {
  read(): Promise<string | undefined>;
  /** Must be durable when it resolves (the default is writeFileAtomic). */
  write(text: string): Promise<void>;
  readonly where: string;
}

/** The pool's file in the state dir. */
export function poolFile(stateDir: string): string {
  return join(stateDir, 'addresses', 'reservations.json');
}

/** A state file written with writeFileAtomic (mode 0600, its directory made 0700 on first write). */
export function fileStorage(path: string): StateStorage {
  return {
    where: path,
    read: () => readFileIfExists(path),
    write: async (text) => {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, text, 0o600);
    },
  };
}

export class AddressPool {
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private state: PoolState,
    private readonly storage: StateStorage,
    private readonly now: () => Date,
  ) {}

  static async open(storage: StateStorage, now: () => Date = () => new Date()): Promise<AddressPool> {
    const text = await storage.read();
    return new AddressPool(text === undefined ? EMPTY_POOL : parsePoolState(text, storage.where), storage, now);
  }

  /** Runs fn after every earlier call has settled: the in-process mutex. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Writes the new state, and only then makes it (and the address) visible. */
  private async commit(next: PoolState): Promise<void> {
    await this.storage.write(JSON.stringify(next, null, 1) + '\n');
    this.state = next;
  }

  /** The key's address in `subnet` (reserved on disk before this resolves). */
  allocate(subnet: Cidr, key: ReservationKey, requested?: number): Promise<{ reservation: Reservation; fresh: boolean }> {
    return this.serialize(async () => {
      const plan = planAllocate(this.state, subnet, key, this.now(), requested);
      if (plan.fresh) await this.commit(plan.state);
      return { reservation: plan.reservation, fresh: plan.fresh };
    });
  }

  /** Idempotent: releasing what is not reserved returns undefined. */
  release(key: ReservationKey): Promise<Reservation | undefined> {
    return this.serialize(async () => {
      const plan = planRelease(this.state, key);
      if (plan.released !== undefined) await this.commit(plan.state);
      return plan.released;
    });
  }

  get(key: ReservationKey): Reservation | undefined {
    return this.state.reservations.find((r) => sameKey(r, key));
  }

  list(current: Cidr | undefined): ListedReservation[] {
    return listReservations(this.state, current);
  }
}
