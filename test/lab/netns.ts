// One network namespace made by the lab, and the way to run things inside it.
//
// Hosts, containers and the underlay are all just named namespaces; this class
// gives each the same `exec`/`spawn` (through `ip netns exec`, so per-namespace
// /etc/netns/<name> bind mounts apply as they do for real tools). Spawned
// processes are tracked by the owning Scope and killed on teardown.
import { run, LabProcess } from './exec.js';
import type { ExecOptions, ExecResult, SpawnOptions } from './exec.js';
import type { Scope } from './scope.js';

export class Namespace {
  readonly netnsPath: string;

  constructor(
    readonly name: string,
    protected readonly scope: Scope,
  ) {
    this.netnsPath = `/run/netns/${name}`;
  }

  /** `ip netns exec <name> argv…`; throws with stderr on a non-zero exit unless `allowFail`. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.name, ...argv], opts);
  }

  /** A long-running process in this namespace, killed by the lab's destroy(). */
  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess {
    return this.spawnTracked(['ip', 'netns', 'exec', this.name, ...argv], opts);
  }

  /** Spawns argv as given (e.g. an nsenter line), tracked like spawn(). */
  spawnTracked(argv: readonly string[], opts?: SpawnOptions): LabProcess {
    return this.scope.track(new LabProcess(argv, opts));
  }

  /** Runs an `ip -batch` script inside this namespace (one process for many link/addr commands). */
  async ipBatch(lines: readonly string[]): Promise<void> {
    if (lines.length) await run(['ip', '-n', this.name, '-batch', '-'], { input: `${lines.join('\n')}\n` });
  }
}

/** Creates a namespace with loopback up, recorded in `scope` before anything else can fail. */
export async function createNamespace(scope: Scope, name: string): Promise<Namespace> {
  await run(['ip', 'netns', 'add', name]);
  scope.trackNetns(name);
  const ns = new Namespace(name, scope);
  await ns.ipBatch(['link set lo up']);
  return ns;
}
