// Network-namespace handles for the netlink and TUN code: a namespace is named
// by a path (/run/netns/NAME, /proc/PID/ns/net) or given as an open fd; the
// kernel wants an fd (setns, IFLA_NET_NS_FD), which must stay open until the
// request that uses it has been handled, and no longer.

import { closeSync, openSync } from 'node:fs';
import { fromSystemError } from './errors.js';
import type { NetnsRef } from './types.js';

export function openNetnsFd(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw fromSystemError(e, { op: 'open netns', object: path });
  }
}

/** Runs fn with an fd for ns; an fd opened here is closed once fn's promise settles. */
export async function withNetnsFd<T>(ns: NetnsRef, fn: (fd: number) => T | Promise<T>): Promise<T> {
  if ('fd' in ns) return fn(ns.fd);
  const fd = openNetnsFd(ns.path);
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}
