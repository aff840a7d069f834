// Removing what earlier runs left behind, and making sure this run leaves nothing.
//
// A test process can die at any point (a crash, `kill -9`, a CI timeout), so
// leftovers are expected: `cleanupLeftovers()` removes lab namespaces and temp
// dirs whose owning PID (encoded in the name, see names.ts) no longer runs.
// Everything in such a namespace was started by the lab, so killing it is safe;
// processes outside namespaces are found through the PID record in the run's
// temp dir and killed only if their start time still matches (no PID reuse).
// For this process, SIGINT/SIGTERM handlers destroy live labs before exiting,
// and an 'exit' handler does a synchronous best-effort teardown.
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_PREFIX, ownerPid } from './names.js';
import { deleteNetns, killRecordedPids, liveScopes } from './scope.js';

const NETNS_DIR = '/run/netns';

export interface CleanupReport {
  namespaces: string[];
  dirs: string[];
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM means it exists but belongs to someone else: alive.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isLeftover(name: string): boolean {
  if (!name.startsWith(LAB_PREFIX)) return false;
  const pid = ownerPid(name);
  return pid !== undefined && pid !== process.pid && !isPidAlive(pid);
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * Lab namespaces in /run/netns. Read from the directory rather than `ip netns list`,
 * which trips over podman's empty placeholder files ("Peer netns reference is invalid").
 */
export async function listLabNetns(): Promise<string[]> {
  return (await listDir(NETNS_DIR)).filter((n) => n.startsWith(LAB_PREFIX));
}

/** Kills processes, deletes namespaces and temp dirs of lab runs whose owning process is gone. */
export async function cleanupLeftovers(): Promise<CleanupReport> {
  const dirs = (await listDir(tmpdir())).filter(isLeftover);
  await Promise.all(dirs.map((d) => killRecordedPids(join(tmpdir(), d))));
  // Containers before hosts before the underlay, the same order teardown uses.
  const rank = (n: string): number => (/-c\d/.test(n) ? 0 : /-u$/.test(n) ? 2 : 1);
  const namespaces = (await listLabNetns()).filter(isLeftover).sort((a, b) => rank(a) - rank(b));
  const removed: string[] = [];
  for (const ns of namespaces) {
    // Another test process may be cleaning the same leftover right now; losing that race is fine.
    await deleteNetns(ns).then(
      () => removed.push(ns),
      () => undefined,
    );
  }
  await Promise.all(dirs.map((d) => rm(join(tmpdir(), d), { recursive: true, force: true })));
  return { namespaces: removed, dirs };
}

let handlersInstalled = false;

/** Installs (once) the SIGINT/SIGTERM and exit handlers that tear down live labs. */
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (signal: NodeJS.Signals, exitCode: number): void => {
    // A second signal while tearing down means "now": the exit handler still does its sync pass.
    process.once(signal, () => process.exit(exitCode));
    const all = liveScopes().map((s) => s.dispose(500).catch(() => undefined));
    void Promise.all(all).finally(() => process.exit(exitCode));
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
  process.on('exit', () => {
    for (const scope of liveScopes()) scope.disposeSync();
  });
}
