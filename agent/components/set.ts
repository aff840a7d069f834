// The lifetime of the agent's components as a whole: start them in order,
// run until SIGTERM/SIGINT (exit 0) or until one reports a fatal error (which
// is rethrown for the CLI to map to an exit code), then stop them in reverse
// and close what they share.

import type { Logger } from 'pino';
import { startAll, stopAll, type Component } from '../core/component.js';

export class AgentComponents {
  private rejectFatal: ((e: unknown) => void) | undefined;
  private readonly fatal = new Promise<never>((_, reject) => {
    this.rejectFatal = reject;
  });

  constructor(
    private readonly log: Logger,
    /** Closes what the components share (the etcd client), after they stopped. */
    private readonly closeShared: () => void,
  ) {
    // Nobody may be awaiting yet when a component fails during start.
    this.fatal.catch(() => undefined);
  }

  /** For components: ends the agent with this error. */
  readonly fail = (e: unknown): void => {
    this.rejectFatal?.(e);
  };

  async run(components: readonly Component[]): Promise<number> {
    const onStopError = (name: string, e: unknown): void => this.log.error({ component: name, err: (e as Error).message }, 'component failed to stop');
    const signalled = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    try {
      await Promise.race([startAll(components, onStopError), this.fatal]);
      const signal = await Promise.race([signalled, this.fatal]);
      this.log.info({ signal }, 'stopping; kernel state and the subnet lease stay for the next start');
      await stopAll(components, onStopError);
      return 0;
    } catch (e) {
      await stopAll(components, onStopError);
      throw e;
    } finally {
      this.closeShared();
    }
  }
}
