// The local API on `<run-dir>/weft.sock` as a component: other components add
// their routes (attachments, CNI, DNS, peers) before it starts, as values or as
// functions read at start (a component that only has its routes once started
// itself), so the socket opens once with everything it serves.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { socketPathOf } from '../api/client.js';
import { startApiServer, type Routes } from '../api/server.js';

export class ApiComponent implements Component {
  readonly name = 'api';
  private readonly sources: (Routes | (() => Routes))[] = [];
  private server: Server | undefined;

  constructor(
    private readonly runDir: string,
    state: NodeState,
    private readonly log: Logger,
  ) {
    this.sources.push({ 'GET /v1/status': async () => state.status() });
  }

  addRoutes(routes: Routes | (() => Routes)): void {
    this.sources.push(routes);
  }

  async start(): Promise<void> {
    const routes: Routes = Object.assign({}, ...this.sources.map((r) => (typeof r === 'function' ? r() : r)));
    this.server = await startApiServer(socketPathOf(this.runDir), routes, this.log);
  }

  async stop(): Promise<void> {
    this.server?.close();
  }
}
