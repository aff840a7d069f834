// Kernel errno -> WeftError('KERNEL') with a message an operator can act on:
//   "netlink: add route 10.42.3.0/24 via 10.42.3.0 dev weft.1: File exists (EEXIST)"
// plus the kernel's own extended-ACK text when it sent one. Pure, so the exact
// wording is unit-tested. Uses strerror()'s wording (what `ip` prints), not
// libuv's lower-case one.

import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { WeftError, isWeftError } from '../../ipam/errors.js';

const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  ERANGE: 'Numerical result out of range',
  EMSGSIZE: 'Message too long',
  EPROTONOSUPPORT: 'Protocol not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ENOBUFS: 'No buffer space available',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
};

const NAME_BY_ERRNO = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name] as [number, string]),
);

/** "EEXIST" for 17; "E<n>" for a number this platform does not name. */
export function errnoName(errno: number): string {
  return NAME_BY_ERRNO.get(errno) ?? `E${errno}`;
}

export function errnoText(name: string, errno?: number): string {
  const known = STRERROR[name];
  if (known) return known;
  const uv = errno === undefined ? undefined : getSystemErrorMap().get(-errno)?.[1];
  return uv ?? 'Unknown error';
}

/** What failed, in `ip`-like words: op "add route", object "10.42.3.0/24 via 10.42.3.0 dev weft.1". */
export interface OpContext {
  op: string;
  object: string;
}

export function kernelError(errno: number, ctx: OpContext, extack?: string): WeftError {
  const name = errnoName(errno);
  const tail = extack ? ` (kernel: ${extack})` : '';
  return new WeftError('KERNEL', `netlink: ${ctx.op} ${ctx.object}: ${errnoText(name, errno)} (${name})${tail}`, {
    errno: name,
    errnoNumber: errno,
    op: ctx.op,
    object: ctx.object,
    ...(extack ? { extack } : {}),
  });
}

/** An error the addon threw (Node-style .code), re-cast with what we were doing. */
export function fromSystemError(e: unknown, ctx: OpContext): WeftError {
  if (isWeftError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : constants.errno[err.code as keyof typeof constants.errno];
  if (typeof errno === 'number') return kernelError(errno, ctx);
  return new WeftError('KERNEL', `netlink: ${ctx.op} ${ctx.object}: ${String(err?.message ?? e)}`, { op: ctx.op, object: ctx.object });
}

/** The errnos that mean "that object is not there" across links, routes, neighbours. */
const NOT_THERE = new Set(['ENOENT', 'ESRCH', 'ENODEV', 'EADDRNOTAVAIL']);

/** True when a delete failed only because the object was already gone. */
export function isNotFound(e: unknown): boolean {
  return isWeftError(e, 'KERNEL') && NOT_THERE.has(String(e.details.errno));
}

export function isExists(e: unknown): boolean {
  return isWeftError(e, 'KERNEL') && e.details.errno === 'EEXIST';
}
