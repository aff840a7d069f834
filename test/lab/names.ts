// Names of everything the lab creates: namespaces and temp dirs.
//
// Every name carries a run id that starts with the owning process's PID, so
// parallel test files (vitest forks) never collide, and a later run can tell
// a leftover of a dead process (safe to remove) from one still in use.
// Format: `weft-lab-<pid>-<rand4>` for a run; namespaces append a role
// suffix (`-u`, `-h1`, `-c3`). Everything stays at 40 characters or less.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LAB_PREFIX = 'weft-lab-';
export const MAX_NAME_LENGTH = 40;

const OWNED_NAME = /^weft-lab-(\d+)-([a-z0-9]{4})(?:-.*)?$/;

/** A fresh run id, `<pid>-<rand4>`, for one lab or one standalone etcd. */
export function newRunId(): string {
  // base36 of 3 random bytes padded to 4 chars: enough to separate runs of one PID.
  const rand = (randomBytes(3).readUIntBE(0, 3) % 36 ** 4).toString(36).padStart(4, '0');
  return `${process.pid}-${rand}`;
}

/** `weft-lab-<runId>` or `weft-lab-<runId>-<suffix>`, checked against the length limit. */
export function labName(runId: string, suffix?: string): string {
  const name = suffix === undefined ? `${LAB_PREFIX}${runId}` : `${LAB_PREFIX}${runId}-${suffix}`;
  if (name.length > MAX_NAME_LENGTH) {
    throw new Error(`lab name ${name} is longer than ${MAX_NAME_LENGTH} characters`);
  }
  return name;
}

/** The temp dir that holds a run's files (etcd data, certs, configs). */
export function runTmpDir(runId: string): string {
  return join(tmpdir(), labName(runId));
}

/** The PID that owns a lab name, or undefined for names the lab did not make. */
export function ownerPid(name: string): number | undefined {
  const m = OWNED_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Reduces a caller's label to characters safe in a netns name, within `room`. */
export function sanitizeLabel(label: string, room: number): string {
  return label.toLowerCase().replace(/[^a-z0-9]+/g, '').slice(0, Math.max(0, room));
}
