// Ownership of one run's resources: its processes, namespaces and temp dir.
//
// A lab (or a standalone etcd) records everything it makes in a Scope the
// moment it exists, so teardown never depends on how far setup got. Teardown
// comes in two forms: `dispose()` (async, graceful, used by destroy()) and
// `disposeSync()` (best effort, for process.on('exit') where nothing async
// runs). All live scopes sit in one registry that the signal/exit handlers
// in cleanup.ts walk.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';
import type { LabProcess } from './exec.js';
import { runTmpDir } from './names.js';

const live = new Set<Scope>();

/** In each run's temp dir: `<pid> <start time>` per spawned process, for cleanup after a crash. */
const PID_FILE = 'pids';

/** The kernel's start time of `pid` (field 22 of /proc/<pid>/stat); with the PID it names one process for good. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Kills the processes recorded in a run's temp dir that still are the same processes.
 * This reaches processes outside lab namespaces (a standalone etcd) after their owner died.
 */
export async function killRecordedPids(runDir: string): Promise<void> {
  const text = await readFile(join(runDir, PID_FILE), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [pid, start] = line.split(' ').map(Number);
    if (pid && start !== undefined && procStartTime(pid) === String(start)) signalPid(pid, 'SIGKILL');
  }
}

/** Scopes not yet disposed, for the signal and exit handlers. */
export function liveScopes(): Scope[] {
  return [...live];
}

/** PIDs of the processes inside a namespace (all of them ours: we made the namespace). */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { allowFail: true, timeoutMs: 5000 });
  return parsePids(r.stdout);
}

export function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((t) => /^\d+$/.test(t))
    .map(Number);
}

export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

/** Kills whatever still runs in `ns`, then deletes it; errors only if it is still there afterwards. */
export async function deleteNetns(ns: string): Promise<void> {
  for (const pid of await netnsPids(ns)) signalPid(pid, 'SIGKILL');
  const r = await run(['ip', 'netns', 'del', ns], { allowFail: true, timeoutMs: 10_000 });
  // What `ip netns exec` binds over /etc for it (the agent writes resolv.conf there for named namespaces).
  await rm(join('/etc/netns', ns), { recursive: true, force: true }).catch(() => undefined);
  if (r.code !== 0 && !/No such file|not found|does not exist/i.test(r.stderr)) {
    throw new Error(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
}

export class Scope {
  readonly tmpDir: string;
  private readonly procs = new Set<LabProcess>();
  /** Insertion order is creation order; teardown goes in reverse (containers before hosts before underlay). */
  private readonly namespaces: string[] = [];
  private disposing: Promise<void> | undefined;

  constructor(readonly runId: string) {
    this.tmpDir = runTmpDir(runId);
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    live.add(this);
  }

  get disposed(): boolean {
    return this.disposing !== undefined;
  }

  track(proc: LabProcess): LabProcess {
    if (this.disposed) {
      proc.kill('SIGKILL');
      throw new Error(`lab run ${this.runId} is already destroyed: cannot start ${proc.argv.join(' ')}`);
    }
    this.procs.add(proc);
    const start = procStartTime(proc.pid);
    if (start) appendFileSync(join(this.tmpDir, PID_FILE), `${proc.pid} ${start}\n`);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  trackNetns(name: string): void {
    this.namespaces.push(name);
  }

  /** Stops tracked processes (SIGTERM, SIGKILL after `graceMs`), deletes namespaces and the temp dir. Idempotent. */
  dispose(graceMs = 1500): Promise<void> {
    this.disposing ??= (async () => {
      await Promise.all([...this.procs].map((p) => p.stop(graceMs)));
      const failures: string[] = [];
      for (const ns of [...this.namespaces].reverse()) {
        await deleteNetns(ns).catch((e: Error) => failures.push(e.message));
      }
      await rm(this.tmpDir, { recursive: true, force: true });
      live.delete(this);
      if (failures.length) throw new Error(`lab teardown left namespaces behind:\n${failures.join('\n')}`);
    })();
    return this.disposing;
  }

  /** Best-effort synchronous teardown for process.on('exit'). */
  disposeSync(): void {
    for (const p of this.procs) signalPid(p.pid, 'SIGKILL');
    for (const ns of [...this.namespaces].reverse()) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of parsePids(pids)) signalPid(pid, 'SIGKILL');
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Already gone, or nothing more we can do while exiting.
      }
    }
    rmSync(this.tmpDir, { recursive: true, force: true });
    live.delete(this);
  }
}
