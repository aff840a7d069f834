// The attachment service (agent/attachments/) as a component: loads the
// address pool and records from the state dir, and gives the API its routes
// and the front doors (CNI, Docker, `weft attach`) one shared service.

import type { Logger } from 'pino';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import type { AttachmentService } from '../attachments/service.js';
import type { SweepKernel } from '../attachments/sweep.js';
import { startAttachments, type Attachments } from '../attachments/wire.js';
import type { Routes } from '../api/server.js';

export class AttachmentsComponent implements Component {
  readonly name = 'attachments';
  private started: Attachments | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly state: NodeState,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.started = await startAttachments({ stateDir: this.stateDir, log: this.log, network: () => this.state.hostNetwork() });
  }

  private get ready(): Attachments {
    if (this.started === undefined) throw new Error('the attachment component is used before it started');
    return this.started;
  }

  get service(): AttachmentService {
    return this.ready.service;
  }

  get routes(): Routes {
    return this.ready.routes;
  }

  /** The host as the attachment sweep reads it. */
  get sweepKernel(): SweepKernel {
    return this.ready.sweepKernel;
  }

  async stop(): Promise<void> {
    this.started?.close();
  }
}
