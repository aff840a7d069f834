// Writes subnet.env and the state dir's record of the subnet whenever the
// held lease changes: tools that read flannel's file (and the next start of
// this agent) see the subnet as soon as it is held. Its own component, so
// neither the control plane nor the data plane owns a file they do not need.

import type { Logger } from 'pino';
import { formatCidr } from '../../ipam/cidr.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import { saveSubnet, writeSubnetEnv } from '../state.js';

export interface SubnetEnvOptions {
  readonly state: NodeState;
  readonly stateDir: string;
  readonly subnetFile: string;
  readonly ipMasq: boolean;
  readonly log: Logger;
}

export class SubnetEnvComponent implements Component {
  readonly name = 'subnet.env';
  private unsubscribe: (() => void) | undefined;
  private readonly gate;
  /** Writes are chained, so an older lease never overwrites a newer one. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: SubnetEnvOptions) {
    this.gate = o.state.gate('subnet.env');
  }

  async start(): Promise<void> {
    this.unsubscribe = this.o.state.subscribe((change, facts) => {
      if (change !== 'lease' && change !== 'mtu') return;
      const { lease, config, mtu } = facts;
      if (lease === undefined || config === undefined || mtu === undefined) return;
      this.chain = this.chain.then(async () => {
        try {
          await saveSubnet(this.o.stateDir, lease.subnet, this.o.state.underlay.publicIP);
          await writeSubnetEnv(this.o.subnetFile, { network: config.network, subnet: lease.subnet, mtu, ipMasq: this.o.ipMasq });
          this.gate.open();
          this.o.log.info({ subnetFile: this.o.subnetFile, subnet: formatCidr(lease.subnet) }, 'subnet.env written');
        } catch (e) {
          this.o.log.error({ err: (e as Error).message, subnetFile: this.o.subnetFile }, 'cannot write subnet.env or state');
        }
      });
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.chain;
  }
}
