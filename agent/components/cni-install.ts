// `--install-cni`: once the node is ready, puts the CNI plugin and conflist in
// place (as flannel's DaemonSet does), so a runtime never sends a container to
// a node that cannot network it yet.

import type { Logger } from 'pino';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { installCni, type CniInstallOptions } from '../cni-install.js';

export class CniInstallComponent implements Component {
  readonly name = 'install-cni';
  private unsubscribe: (() => void) | undefined;
  private done = false;

  constructor(
    private readonly opts: CniInstallOptions,
    private readonly state: NodeState,
    private readonly log: Logger,
    private readonly fail: (e: unknown) => void,
  ) {}

  async start(): Promise<void> {
    const tryInstall = (): void => {
      if (this.done || this.state.notReady().length > 0) return;
      this.done = true;
      this.unsubscribe?.();
      installCni(this.opts).then((r) => {
        this.log.info({ plugin: r.plugin, conflist: r.conflist, withPortmap: r.withPortmap, notes: r.notes }, 'CNI plugin and conflist installed');
        for (const w of r.warnings) this.log.warn(w);
      }, this.fail);
    };
    this.unsubscribe = this.state.subscribe(tryInstall);
    tryInstall();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
  }
}
