// Record names: what a name may be, and which names an attachment registers.
// Pure. A record name is relative to the cluster domain ("web", or
// "pod.namespace" for Kubernetes); names are case-insensitive in DNS, so they
// are stored in lower case. Anything that is not a valid DNS name is refused
// here, so the server never has to encode a name it cannot.

import { WeftError } from '../../ipam/errors.js';
import type { Attachment } from '../api/types.js';

/** Labels of letters, digits, '-' and '_' (container names use '_'), 1..63 each. */
const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** Leaves room for the cluster domain within DNS's 253 characters. */
export const MAX_NAME = 190;

/** Why `name` (already lower case) is not a valid record name, or undefined. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_NAME) return `is longer than ${MAX_NAME} characters`;
  const bad = name.split('.').find((l) => !LABEL.test(l));
  if (bad !== undefined) return `has an invalid label "${bad}" (1-63 letters, digits, '-' or '_', not starting or ending with '-')`;
  return undefined;
}

/** A record name from user input: trimmed of a trailing dot, lower-cased, validated. */
export function parseRecordName(raw: unknown, field = 'name'): string {
  if (typeof raw !== 'string') throw new WeftError('INVALID_ARGUMENT', `${field}: must be a string`, { field });
  const name = raw.replace(/\.$/, '').toLowerCase();
  const problem = nameProblem(name);
  if (problem !== undefined) throw new WeftError('INVALID_ARGUMENT', `${field}: "${raw}" ${problem}`, { field, value: raw });
  return name;
}

/**
 * The names an attachment registers: `weft attach --name web` → web; a
 * Kubernetes pod (CNI K8S_POD_NAME + K8S_POD_NAMESPACE) → pod.namespace and
 * pod; podman (K8S_POD_NAME=<container name>, no namespace) → the container
 * name. Names that are not valid DNS names are skipped (returned apart so the
 * caller can say so).
 */
export function attachmentNames(a: Pick<Attachment, 'name' | 'podNamespace'>): { names: string[]; skipped: string[] } {
  if (a.name === undefined || a.name === '') return { names: [], skipped: [] };
  const base = a.name.toLowerCase();
  const wanted = a.podNamespace ? [`${base}.${a.podNamespace.toLowerCase()}`, base] : [base];
  return { names: wanted.filter((n) => nameProblem(n) === undefined), skipped: wanted.filter((n) => nameProblem(n) !== undefined) };
}

/** The address of an attachment without its prefix length ("10.42.7.2/24" → "10.42.7.2"). */
export function attachmentAddress(a: Pick<Attachment, 'ip'>): string {
  return a.ip.split('/')[0]!;
}
