// Why etcd could not be reached, classified from the client's error text. Kept
// apart from etcd-client.ts (which loads the gRPC client) so the subnet
// manager, the lease watcher and the agent can name the cause in their
// warnings without depending on etcd3. Pure.

import { isWeftError } from './errors.js';

const FAILURE_KINDS: readonly [RegExp, string][] = [
  [/certificate|self[- ]signed|altnames|unable to verify|SSL|TLS|handshake|alert/i, 'TLS verification failed'],
  [/ECONNREFUSED|connection refused/i, 'connection refused'],
  [/DEADLINE_EXCEEDED|ETIMEDOUT|deadline|timed? ?out/i, 'timed out'],
  [/ENOTFOUND|EAI_AGAIN|resolution failed|name resolution/i, 'host name not resolved'],
  [/EHOSTUNREACH|ENETUNREACH|no route/i, 'no route to etcd'],
  [/ECONNRESET|socket hang up|disconnected/i, 'connection reset'],
];

/**
 * Why etcd could not be reached, in three words an operator acts on (TLS
 * verification, refused, timeout...). gRPC buries the cause in a long
 * message; warnings put this in their text, not only in a nested field.
 */
export function etcdFailureKind(err: unknown): string {
  if (isWeftError(err) && typeof err.details['kind'] === 'string') return err.details['kind'];
  // A wrapped error's own message names the TLS flags as advice; classify the cause it wraps.
  const reason = isWeftError(err) ? err.details['reason'] : undefined;
  const text = typeof reason === 'string' ? reason : err instanceof Error ? err.message : String(err);
  return FAILURE_KINDS.find(([re]) => re.test(text))?.[1] ?? 'unreachable';
}

