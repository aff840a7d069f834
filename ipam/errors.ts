// The one error type that every weft module throws for expected failures.
// `code` is stable (tests, the agent API and exit codes key on it); `message`
// tells the operator what is wrong and what to do. It lives in ipam/, the
// lowest folder, so that encap/ and agent/ share it without a cycle.

export type WeftErrorCode =
  | 'INVALID_CONFIG' // network config or flags rejected; details name the field
  | 'INVALID_ARGUMENT' // a request or CLI argument is malformed
  | 'NOT_FOUND'
  | 'CONFLICT' // someone else holds what we wanted (retryable by choosing again)
  | 'EXHAUSTED' // no free subnet / address left
  | 'UNAVAILABLE' // etcd or the agent is not reachable now; try again later
  | 'KERNEL' // a netlink request failed; details carry errno
  | 'INTERNAL';

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  /** Structured context for logs and API replies (field names, errno, key, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: WeftErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'WeftError';
    this.code = code;
    this.details = details;
  }
}

/** A config rule broken: names the field and the rule, as flannel users expect. */
export function configError(field: string, rule: string): WeftError {
  return new WeftError('INVALID_CONFIG', `invalid network config: ${field}: ${rule}`, { field, rule });
}

export function isWeftError(e: unknown, code?: WeftErrorCode): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}
