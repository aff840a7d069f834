// Keeps the complete, current set of subnet leases and hands it to subscribers
// whole (never deltas), so that the data plane can reconcile from it.
//
// A list at revision R, then a watch from R+1. A broken or cancelled watch
// (compaction, etcd restart) leads to a fresh list and a new watch, never to a
// gap. A watchdog asks etcd cheaply, every `checkIntervalMs`, how many keys
// exist and how many changed after the last revision the watch delivered; if
// that disagrees twice in a row the watch has gone quiet (etcd3's client can
// leave one stuck after a reconnect), and it is re-created the same way.
// ("How many changed after" is asked as "the newest mod revision", one key
// sorted server-side: etcd's count ignores the min_mod_revision filter.)

import type { Logger } from 'pino';
import { backoffMs, type Clock } from './clock.js';
import type { LeaseEvent, SubnetRegistry, WatchHandle } from './subnet-registry.js';
import type { Lease } from './types.js';
import { etcdFailureKind } from './etcd-failure.js';

/** How long a relist waits for the old watch to close before it goes ahead. */
const CLOSE_WAIT_MS = 2000;

export type LeaseSetListener = (leases: Lease[], revision: number) => void;

export interface LeaseWatcherOptions {
  readonly registry: SubnetRegistry;
  readonly clock: Clock;
  readonly log: Logger;
  readonly checkIntervalMs: number;
}

export class LeaseWatcher {
  private readonly leases = new Map<string, Lease>();
  private readonly invalid = new Set<string>();
  private revision = 0;
  private watch: WatchHandle | undefined;
  private readonly listeners: LeaseSetListener[] = [];
  private readonly stopped = new AbortController();
  private resyncing: Promise<void> | undefined;
  private emitScheduled = false;
  private suspectRevision: number | undefined;
  private listed = false;
  /** What known() hands out; renewed at each notification. */
  private snapshot: Lease[] | undefined;
  private synced!: Promise<void>;
  private resolveSynced!: () => void;

  constructor(private readonly opts: LeaseWatcherOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
  }

  subscribe(listener: LeaseSetListener): void {
    this.listeners.push(listener);
  }

  /** The current set (may be empty before the first list). */
  current(): Lease[] {
    return [...this.leases.values()];
  }

  /**
   * The set as of the last notification once the first list is done;
   * undefined before (the subnet manager then lists itself). The same array
   * until the next notification, so choosers can reuse what they derived
   * from it; a choice from it may be slightly stale, which the
   * create-if-absent transaction makes safe.
   */
  known(): readonly Lease[] | undefined {
    if (!this.listed) return undefined;
    this.snapshot ??= this.current();
    return this.snapshot;
  }

  /** Resolves after the first successful list. */
  ready(): Promise<void> {
    return this.synced;
  }

  start(): void {
    void this.resync('start');
    void this.watchdog();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.resyncing;
    await this.watch?.close();
    this.watch = undefined;
  }

  private scheduleEmit(): void {
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    // Coalesce a burst of watch responses into one full-set notification.
    setImmediate(() => {
      this.emitScheduled = false;
      if (this.stopped.signal.aborted) return;
      const set = this.current();
      this.snapshot = set;
      for (const l of this.listeners) l(set, this.revision);
    });
  }

  /** List, replace the set, and watch from just after the list. Retries until it works or stop(). */
  private resync(reason: string): Promise<void> {
    if (this.resyncing !== undefined) return this.resyncing;
    this.resyncing = (async () => {
      const { registry, clock, log } = this.opts;
      // Bounded: a close that never answers must not stall the relist (the watch is dropped either way).
      const closing = this.watch?.close().catch(() => undefined);
      this.watch = undefined;
      if (closing !== undefined) await Promise.race([closing, clock.sleep(CLOSE_WAIT_MS, this.stopped.signal)]);
      for (let attempt = 0; !this.stopped.signal.aborted; attempt++) {
        try {
          const list = await registry.list();
          this.leases.clear();
          this.invalid.clear();
          list.leases.forEach((lease, i) => this.leases.set(list.keys[i] ?? String(i), lease));
          for (const s of list.skipped) {
            this.invalid.add(s.key);
            log.warn({ key: s.key, reason: s.reason }, 'skipping a subnet lease that does not parse');
          }
          this.revision = list.revision;
          this.listed = true;
          this.watch = await registry.watch(list.revision + 1, {
            onEvents: (events, revision) => this.apply(events, revision),
            onBroken: (err) => {
              log.warn({ err: err.message }, 'subnet watch broke; re-listing');
              void this.resync('watch broken');
            },
          });
          log.debug({ reason, revision: list.revision, leases: list.leases.length }, 'subnet leases listed');
          this.resolveSynced();
          this.scheduleEmit();
          return;
        } catch (e) {
          log.warn({ err: (e as Error).message, attempt }, `cannot list subnet leases (${etcdFailureKind(e)}); retrying`);
          await clock.sleep(backoffMs(attempt), this.stopped.signal);
        }
      }
    })().finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  private apply(events: LeaseEvent[], revision: number): void {
    for (const ev of events) {
      if (ev.type === 'put') {
        this.invalid.delete(ev.key);
        this.leases.set(ev.key, ev.lease);
      } else if (ev.type === 'invalid') {
        this.leases.delete(ev.key);
        this.invalid.add(ev.key);
        this.opts.log.warn({ key: ev.key, reason: ev.reason }, 'skipping a subnet lease that does not parse');
      } else {
        this.leases.delete(ev.key);
        this.invalid.delete(ev.key);
      }
    }
    this.revision = Math.max(this.revision, revision);
    this.scheduleEmit();
  }

  private async watchdog(): Promise<void> {
    const { registry, clock, log, checkIntervalMs } = this.opts;
    while (!this.stopped.signal.aborted) {
      await clock.sleep(checkIntervalMs, this.stopped.signal);
      if (this.stopped.signal.aborted || this.resyncing !== undefined) continue;
      try {
        const seen = this.revision;
        const stats = await registry.stats();
        const agrees = stats.maxModRevision <= seen && stats.count === this.leases.size + this.invalid.size;
        if (agrees) {
          this.suspectRevision = undefined;
        } else if (this.suspectRevision === seen) {
          // Two checks, and the watch delivered nothing in between: it is stuck.
          log.warn({ seen, etcdCount: stats.count, known: this.leases.size }, 'subnet watch went quiet; re-creating it');
          this.suspectRevision = undefined;
          await this.resync('watchdog');
        } else {
          this.suspectRevision = seen;
        }
      } catch {
        // etcd unreachable: the client reconnects the watch itself; check again later.
      }
    }
  }
}
