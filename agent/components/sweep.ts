// The attachment sweep (agent/attachments/sweep.ts) as a component: it starts
// after the attachment service and before the API, so the first sweep (which
// frees what a killed agent left mid-attach) is done before any request comes;
// then it sweeps every --resync-interval. `weft status` shows how many sweeps
// ran and what the last one freed.

import type { Logger } from 'pino';
import type { Clock } from '../../ipam/clock.js';
import { AttachmentSweeper, ORPHAN_GRACE_MS } from '../attachments/sweep.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import type { AttachmentsComponent } from './attachments.js';

export class SweepComponent implements Component {
  readonly name = 'sweep';
  private sweeper: AttachmentSweeper | undefined;
  /** Reservations older than this (this process's start) cannot belong to an attach in flight. */
  private readonly startedAt: number;

  constructor(
    private readonly attachments: AttachmentsComponent,
    private readonly state: NodeState,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.startedAt = clock.now();
  }

  async start(): Promise<void> {
    this.sweeper = new AttachmentSweeper({
      service: this.attachments.service,
      kernel: this.attachments.sweepKernel,
      clock: this.clock,
      intervalMs: this.intervalMs,
      graceMs: ORPHAN_GRACE_MS,
      startedAt: this.startedAt,
      log: this.log,
    });
    this.state.addStatus('sweep', () => this.sweeper?.status());
    await this.sweeper.start();
  }

  async stop(): Promise<void> {
    await this.sweeper?.stop();
  }
}
