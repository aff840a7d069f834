// Turns what the attachment service throws into a CNI error. The service
// speaks the agent's error codes (ipam/errors.ts WeftErrorCode); the runtime
// only understands CNI codes, and retries only on 11. The mapping is by the
// `code` string, not by class, so errors that crossed a socket as JSON map
// the same way as ones thrown in-process.

import { CniError, CniErrorCode } from './errors.js';
import type { CniCommand } from './version.js';

export const AGENT_UNAVAILABLE_MSG = 'try again later: is the weft agent running? check `weft status`';

/** Thrown by the protocol when the service does not answer in time. */
export class ServiceTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the weft agent did not answer within ${timeoutMs} ms`);
    this.name = 'ServiceTimeout';
  }
}

/**
 * Codes that mean "nobody answered" rather than "the answer is no": the agent
 * (or etcd behind it) is down or restarting. Node's socket errno names are
 * here for services that are clients of a remote agent.
 */
const UNAVAILABLE_CODES = new Set([
  'UNAVAILABLE',
  'TIMEOUT',
  'DEADLINE_EXCEEDED',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

const BY_CODE: Readonly<Record<string, { code: CniErrorCode; msg: string }>> = {
  NOT_FOUND: { code: CniErrorCode.UnknownContainer, msg: 'container unknown or does not exist' },
  INVALID_ARGUMENT: { code: CniErrorCode.InvalidNetworkConfig, msg: 'invalid request' },
  INVALID_CONFIG: { code: CniErrorCode.InvalidNetworkConfig, msg: 'invalid network config' },
  CONFLICT: { code: CniErrorCode.Conflict, msg: 'already in use' },
  EXHAUSTED: { code: CniErrorCode.Exhausted, msg: 'no free address left on this host' },
  KERNEL: { code: CniErrorCode.Kernel, msg: 'the kernel refused a network change' },
};

export function errorCodeOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  const code = (e as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * For STATUS, an unreachable backend is the answer itself: "not available"
 * (50), not "ask again" (11).
 */
export function fromServiceError(e: unknown, command: CniCommand): CniError {
  if (e instanceof CniError) return e;
  const details = e instanceof Error ? e.message : String(e);
  const code = e instanceof ServiceTimeout ? 'TIMEOUT' : errorCodeOf(e);
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return command === 'STATUS'
      ? new CniError(CniErrorCode.PluginNotAvailable, 'weft is not available', details)
      : new CniError(CniErrorCode.TryAgainLater, AGENT_UNAVAILABLE_MSG, details);
  }
  const known = code === undefined ? undefined : BY_CODE[code];
  if (known !== undefined) return new CniError(known.code, known.msg, details);
  return new CniError(CniErrorCode.Internal, 'internal error in weft', details);
}
