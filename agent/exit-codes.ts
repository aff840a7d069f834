// Exit codes of every weft command, documented in the README. Scripts and
// supervisors key on them, so they never change meaning.

import { isWeftError } from '../ipam/errors.js';

export const EXIT = {
  OK: 0,
  /** Unexpected failure: a bug or an unforeseen environment; the log says more. */
  INTERNAL: 1,
  /** Bad command line or environment variable. */
  USAGE: 2,
  /** The network config in etcd (or the one given to `config set`) is invalid. */
  CONFIG: 3,
  /** etcd could not be reached (one-shot commands; the agent retries instead). */
  UNAVAILABLE: 4,
  /** The host (interface, address) is not as the flags say, or what a command names does not exist. */
  HOST: 5,
  /** Another weft agent already serves this --run-dir. */
  CONFLICT: 6,
} as const;

export function exitCodeFor(err: unknown): number {
  if (!isWeftError(err)) return EXIT.INTERNAL;
  switch (err.code) {
    case 'INVALID_ARGUMENT':
      return EXIT.USAGE;
    case 'INVALID_CONFIG':
      return EXIT.CONFIG;
    case 'UNAVAILABLE':
      return EXIT.UNAVAILABLE;
    case 'NOT_FOUND':
      return EXIT.HOST;
    case 'CONFLICT':
      return EXIT.CONFLICT;
    default:
      return EXIT.INTERNAL;
  }
}
