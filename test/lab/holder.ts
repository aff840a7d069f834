// The per-host "holder": one long-lived process whose mount namespace a host's
// runtimes (podman, dockerd, the agent) share.
//
// Each `ip netns exec` makes a fresh mount namespace with a fresh /sys that
// lacks /sys/fs/cgroup, and bind mounts made by one runtime call (podman's
// netns files) would be invisible to the next. So the holder remounts this
// machine's cgroup hierarchies once, inside its private mount namespace (nothing
// propagates back), then sleeps; every later call enters it with
// `nsenter -t <pid> -m -n`. The mounts to replay are read from our own
// /proc/self/mountinfo, so v1, hybrid and pure-v2 machines all work.
import { readFileSync } from 'node:fs';
import { LabProcess, run } from './exec.js';
import type { ExecOptions, ExecResult, SpawnOptions } from './exec.js';

/** Whatever can start a process in a host's namespace (a LabHost). */
export interface HolderTarget {
  readonly name: string;
  /** Spawns inside the namespace (through `ip netns exec`), tracked. */
  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess;
  /** Spawns argv as given, tracked. */
  spawnTracked(argv: readonly string[], opts?: SpawnOptions): LabProcess;
}

export interface Holder {
  readonly pid: number;
  readonly process: LabProcess;
  /** Runs argv in the holder's mount and network namespaces. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** A long-running process in the holder's namespaces, killed by the lab's destroy(). */
  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess;
  /** `nsenter -t <pid> -m -n -- argv…`, for callers that build their own command lines. */
  nsenterArgv(argv: readonly string[]): string[];
}

interface Mount {
  fstype: string;
  point: string;
  options: string;
}

/** The cgroup mounts (and the tmpfs they sit on) of this process, in mount order. */
export function cgroupMounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Mount[] {
  const mounts: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const point = left.split(' ')[4];
    const [fstype, , options] = right.split(' ');
    if (!point || !fstype || !options) continue;
    if (point !== '/sys/fs/cgroup' && !point.startsWith('/sys/fs/cgroup/')) continue;
    if (!['tmpfs', 'cgroup', 'cgroup2'].includes(fstype)) continue;
    mounts.push({ fstype, point, options });
  }
  return mounts;
}

// Constant script; the mounts arrive as positional parameters (fstype, point, options triples).
const HOLDER_SCRIPT = `set -e
while [ $# -ge 3 ]; do mkdir -p "$2"; mount -t "$1" -o "$3" "$1" "$2"; shift 3; done
echo weft-holder-ready
exec sleep infinity`;

/** Starts the holder for `host` and waits until its cgroup mounts are in place. */
export async function startHolder(host: HolderTarget, timeoutMs = 10_000): Promise<Holder> {
  const args = cgroupMounts().flatMap((m) => [m.fstype, m.point, m.options]);
  const proc = host.spawn(['sh', '-c', HOLDER_SCRIPT, 'weft-holder', ...args]);
  await proc.waitForOutput(/weft-holder-ready/, timeoutMs);
  const nsenterArgv = (argv: readonly string[]): string[] => [
    'nsenter', '-t', String(proc.pid), '-m', '-n', '--', ...argv,
  ];
  const alive = (): void => {
    if (!proc.running) throw new Error(`holder of ${host.name} is not running`);
  };
  return {
    pid: proc.pid,
    process: proc,
    nsenterArgv,
    exec: async (argv, opts) => {
      alive();
      return run(nsenterArgv(argv), opts);
    },
    spawn: (argv, opts) => {
      alive();
      return host.spawnTracked(nsenterArgv(argv), opts);
    },
  };
}
