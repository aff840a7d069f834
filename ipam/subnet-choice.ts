// Which subnet a host should try to lease, decided in pure code from the
// current leases, so that the etcd side only has to attempt what this returns
// and the decision can be tested with plain objects and a seeded random.
//
// Order (flannel's, plus the state file): our own lease by public IP, then the
// subnet we held before, then a uniformly random free one. "Taken" means
// overlapping any lease, not equal to one: after a SubnetLen change old leases
// of another length still occupy their addresses. Free subnets are counted and
// indexed through merged intervals of taken subnet indexes, so a /8 split into
// /30s (4 million subnets) costs O(leases log leases), not a 4-million array.

import { cidrsOverlap, enumerateSubnets, isSubnetValidInConfig, lastAddress, subnetAt } from './cidr.js';
import type { Cidr, Lease, NetworkConfig } from './types.js';

export interface ChooseSubnetInput {
  readonly config: NetworkConfig;
  /** Every current lease, ours and the other hosts'. */
  readonly leases: readonly Lease[];
  readonly publicIP: string;
  /** The subnet this host held before, from its state file. */
  readonly previous?: Cidr | undefined;
  /** Subnets lost to another host's race in this round. */
  readonly exclude?: readonly Cidr[] | undefined;
  /** indexTaken(config, leases), when the caller keeps it for many choices from the same set. */
  readonly taken?: TakenIndex | undefined;
  /** Uniform in [0, 1); injected so that tests are deterministic. */
  readonly random: () => number;
}

export type SubnetChoice =
  | { readonly kind: 'existing'; readonly lease: Lease }
  | { readonly kind: 'previous'; readonly subnet: Cidr }
  | { readonly kind: 'random'; readonly subnet: Cidr }
  /** Every subnet between SubnetMin and SubnetMax is taken (or excluded this round). */
  | { readonly kind: 'exhausted'; readonly subnets: number; readonly taken: number };

/** Closed interval of subnet indexes. */
type Span = [first: number, last: number];

/**
 * The leasable subnet indexes that `c` overlaps, or undefined if none. Works
 * for any prefix length: a shorter prefix covers several subnets, a longer
 * one part of one.
 */
function spanOf(cfg: NetworkConfig, c: Cidr): Span | undefined {
  const step = 2 ** (32 - cfg.subnetLen);
  const count = enumerateSubnets(cfg);
  const first = Math.floor((c.addr - cfg.subnetMin) / step);
  const last = Math.floor((lastAddress(c) - cfg.subnetMin) / step);
  if (last < 0 || first >= count) return undefined;
  return [Math.max(first, 0), Math.min(last, count - 1)];
}

/** Sorted, disjoint, non-adjacent copies of `spans` (the input is not changed). */
function mergeSpans(spans: readonly Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  const merged: Span[] = [];
  for (const s of sorted) {
    const top = merged[merged.length - 1];
    if (top && s[0] <= top[1] + 1) top[1] = Math.max(top[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged;
}

/** Sorted, disjoint, non-adjacent spans covering every taken or excluded subnet. */
function takenSpans(cfg: NetworkConfig, blocked: readonly Cidr[]): Span[] {
  const spans: Span[] = [];
  for (const c of blocked) {
    const s = spanOf(cfg, c);
    if (s) spans.push(s);
  }
  return mergeSpans(spans);
}

/** Leases of this host whose subnet no longer fits the config (flannel deletes these). */
export function staleOwnLeases(config: NetworkConfig, leases: readonly Lease[], publicIP: string): Lease[] {
  return leases.filter((l) => l.attrs.publicIP === publicIP && !isSubnetValidInConfig(config, l.subnet));
}

/** The taken subnets of one lease set, indexed once so that many choices from that set skip the sort. */
export interface TakenIndex {
  readonly config: NetworkConfig;
  readonly spans: readonly Span[];
}

export function indexTaken(config: NetworkConfig, leases: readonly Lease[]): TakenIndex {
  return { config, spans: takenSpans(config, leases.map((l) => l.subnet)) };
}

/** Merges more blocked subnets into sorted, disjoint spans. */
function withExcluded(config: NetworkConfig, spans: readonly Span[], exclude: readonly Cidr[]): readonly Span[] {
  return exclude.length === 0 ? spans : mergeSpans([...spans, ...takenSpans(config, exclude)]);
}

export function chooseSubnet(input: ChooseSubnetInput): SubnetChoice {
  const { config, leases, publicIP, previous } = input;
  const exclude = input.exclude ?? [];
  const excluded = (c: Cidr): boolean => exclude.some((x) => cidrsOverlap(x, c));

  // Several own leases can exist after a crash between create and state write;
  // prefer the one the state file names, then the lowest, for a stable answer.
  const own = leases
    .filter((l) => l.attrs.publicIP === publicIP && isSubnetValidInConfig(config, l.subnet) && !excluded(l.subnet))
    .sort((a, b) => a.subnet.addr - b.subnet.addr);
  const ownLease = own.find((l) => previous && l.subnet.addr === previous.addr && l.subnet.len === previous.len) ?? own[0];
  if (ownLease) return { kind: 'existing', lease: ownLease };

  if (
    previous &&
    isSubnetValidInConfig(config, previous) &&
    !excluded(previous) &&
    !leases.some((l) => cidrsOverlap(l.subnet, previous))
  ) {
    return { kind: 'previous', subnet: previous };
  }

  const indexed = input.taken?.config === config ? input.taken : indexTaken(config, leases);
  const spans = withExcluded(config, indexed.spans, exclude);
  const taken = spans.reduce((n, [a, b]) => n + (b - a + 1), 0);
  const subnets = enumerateSubnets(config);
  const free = subnets - taken;
  if (free <= 0) return { kind: 'exhausted', subnets, taken };

  // The k-th free index: skip every taken span that starts at or before it.
  const r = input.random();
  let index = Math.min(free - 1, Math.max(0, Math.floor((Number.isFinite(r) ? r : 0) * free)));
  for (const [a, b] of spans) {
    if (a > index) break;
    index += b - a + 1;
  }
  return { kind: 'random', subnet: subnetAt(config, index) };
}
