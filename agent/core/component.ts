// A part of the daemon with a lifetime: leases, data plane, API, health, DNS,
// gossip, the Docker plugin. `weft agent` builds the components, hands each
// the doors it needs (etcd registry, netlink, sockets, the node state) and
// starts them in order; it stops them in reverse, so a part is never left
// using one that has already gone. A component whose work must wait (for the
// network config, for readiness) starts that work in the background and
// reports a fatal failure through `fail`, never by throwing later.

export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts components in order; on a failure stops those already started (in reverse) and rethrows. */
export async function startAll(components: readonly Component[], onStopError: (name: string, e: unknown) => void): Promise<void> {
  const started: Component[] = [];
  try {
    for (const c of components) {
      await c.start();
      started.push(c);
    }
  } catch (e) {
    await stopAll(started, onStopError);
    throw e;
  }
}

/** Stops components in reverse order; one failing to stop does not keep the others running. */
export async function stopAll(components: readonly Component[], onError: (name: string, e: unknown) => void): Promise<void> {
  for (const c of [...components].reverse()) {
    try {
      await c.stop();
    } catch (e) {
      onError(c.name, e);
    }
  }
}
