// /healthz and /readyz (agent/health.ts) as a component; an empty
// --healthz-listen turns it off.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { startHealthServer } from '../health.js';

export class HealthComponent implements Component {
  readonly name = 'health';
  private server: Server | undefined;

  constructor(
    private readonly listen: string,
    private readonly state: NodeState,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.listen !== '') this.server = await startHealthServer(this.listen, { notReady: () => this.state.notReady() }, this.log);
  }

  async stop(): Promise<void> {
    this.server?.close();
  }
}
