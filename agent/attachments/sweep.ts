// The attachment sweep: at start and on every --resync-interval, frees what
// no runtime will ever delete (see ./sweep-plan.ts for what and why). This
// module only gathers the picture (kernel first, then the service's records,
// reservations and keys in flight), hands it to the pure planner, and carries
// the actions out through the attachment service, which re-checks each one
// under the key's lock; a detach there also fires the service's "detached"
// event, so the DNS name goes with it. The kernel is one small interface so
// the loop is unit-tested with a fake.
//
// `gatherView` is shared with `weft ps` (GET /v1/attachments), which marks an
// attachment stale, and says why, until the sweep frees it.

import type { Logger } from 'pino';
import type { Clock } from '../../ipam/clock.js';
import type { AttachmentList } from '../api/types.js';
import type { AttachmentService } from './service.js';
import { type KernelView, type SweepAction, goneParts, planSweep } from './sweep-plan.js';

/** The host kernel as the sweep sees it. */
export interface SweepKernel {
  /** True only when `path` surely names no network namespace any more. */
  netnsGone(path: string): Promise<boolean>;
  /** weft's host-side veths (encap/plumb's name pattern) in the host namespace. */
  weftVeths(): Promise<Set<string>>;
}

/** Lists the kernel BEFORE reading `paths` (see sweep-plan.ts for why the order matters). */
export async function gatherView(kernel: SweepKernel, paths: () => readonly string[]): Promise<KernelView> {
  const veths = await kernel.weftVeths();
  const unique = [...new Set(paths())];
  const gone = await Promise.all(unique.map(async (p) => ((await kernel.netnsGone(p)) ? [p] : [])));
  return { veths, goneNetns: new Set(gone.flat()) };
}

/**
 * `weft ps`'s list with every attachment whose namespace or veth is gone marked stale. When the
 * kernel cannot be read the list comes unmarked: `weft ps` must work when things are broken.
 */
export async function listWithLiveness(service: AttachmentService, kernel: SweepKernel): Promise<AttachmentList> {
  const view = await gatherView(kernel, () => service.list().attachments.map((a) => a.netns)).catch(() => undefined);
  const list = service.list();
  if (view === undefined) return list;
  const managed = service.runtimeManagedPrefixes();
  return {
    ...list,
    attachments: list.attachments.map((a) => {
      const gone = goneParts(a, view, managed);
      return gone.length === 0 ? a : { ...a, stale: true, gone };
    }),
  };
}

/**
 * How old a reservation without a record, made by this agent process, must be before the sweep
 * frees it. Attaches in flight are protected by their key's lock anyway; this is the margin.
 */
export const ORPHAN_GRACE_MS = 60_000;

export interface SweepReport {
  readonly detached: number;
  readonly released: number;
  readonly vethsDeleted: number;
  /** Actions the service declined under the key's lock (the key changed since the look). */
  readonly skipped: number;
  readonly failed: number;
}

export interface SweeperOptions {
  readonly service: AttachmentService;
  readonly kernel: SweepKernel;
  readonly clock: Clock;
  readonly intervalMs: number;
  /** How old a reservation without a record, made by this process, must be to count as orphaned. */
  readonly graceMs: number;
  /** When this agent process started (clock ms): older reservations cannot be in flight. */
  readonly startedAt: number;
  readonly log: Logger;
}

export class AttachmentSweeper {
  readonly name = 'sweep';
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private running: Promise<SweepReport> | undefined;
  private count = 0;
  private last: (SweepReport & { at: string }) | undefined;

  constructor(private readonly o: SweeperOptions) {}

  /** The first sweep runs before start() resolves; then one every interval. */
  async start(): Promise<void> {
    await this.sweep().catch(() => undefined);
    this.loop = (async () => {
      while (!this.stopping.signal.aborted) {
        await this.o.clock.sleep(this.o.intervalMs, this.stopping.signal);
        if (!this.stopping.signal.aborted) await this.sweep().catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.running?.catch(() => undefined);
  }

  /** For status: how many sweeps ran and what the last one freed. */
  status(): { sweeps: number; last?: SweepReport & { at: string } } {
    return { sweeps: this.count, ...(this.last ? { last: this.last } : {}) };
  }

  /** One pass; concurrent callers share the pass in progress. */
  sweep(): Promise<SweepReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<SweepReport> {
    const { service, log } = this.o;
    let actions: SweepAction[];
    try {
      const view = await gatherView(this.o.kernel, () => service.list().attachments.map((a) => a.netns));
      actions = planSweep({
        ...view,
        records: service.list().attachments,
        reservations: service.reservations(),
        busy: service.inFlight(),
        runtimeManaged: service.runtimeManagedPrefixes(),
        now: this.o.clock.now(),
        startedAt: this.o.startedAt,
        graceMs: this.o.graceMs,
      });
    } catch (e) {
      log.error({ err: (e as Error).message }, 'sweep: cannot read the kernel or the records; trying again at the next resync');
      throw e;
    }
    const report = { detached: 0, released: 0, vethsDeleted: 0, skipped: 0, failed: 0 };
    for (const a of actions) {
      try {
        if (a.kind === 'delete-veth') {
          if (await service.deleteStrayVeth(a.name)) report.vethsDeleted++;
          else report.skipped++;
          continue;
        }
        const done =
          a.kind === 'detach'
            ? await service.detachIf(a.key, (rec) => rec?.createdAt === a.createdAt, a.reasons.join('; '))
            : await service.detachIf(a.key, (rec, res) => rec === undefined && res?.reservedAt === a.reservedAt, a.reason);
        if (done === undefined) report.skipped++;
        else if (a.kind === 'detach') report.detached++;
        else report.released++;
      } catch (e) {
        report.failed++;
        log.warn({ err: (e as Error).message, action: a }, 'sweep: could not free a leftover; trying again at the next resync');
      }
    }
    this.count++;
    this.last = { ...report, at: new Date(this.o.clock.now()).toISOString() };
    if (actions.length > 0) log.info(report, 'sweep done');
    else log.debug('sweep: nothing to free');
    return report;
  }
}
