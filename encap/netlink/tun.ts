// TUN/TAP devices for the userspace (udp) backend: opened by the native addon
// (open /dev/net/tun + TUNSETIFF), optionally inside another network
// namespace, without spawning `ip tuntap`.
//
// Reading: fs.read() on a TUN fd blocks one libuv thread-pool thread per
// pending read (4 threads by default, shared with fs, dns.lookup and zlib),
// so a forwarder that keeps a read pending per queue starves the rest of the
// agent. Ask for `nonBlock: true` and read when the fd is readable instead
// (watchFd below, the same uv_poll watcher the netlink socket uses), looping
// fs.readSync until EAGAIN. Writes to a TUN fd never block for long.

import { closeSync } from 'node:fs';
import { fromSystemError } from './errors.js';
import { type NativeWatcher, loadNative } from './native.js';
import { openNetnsFd } from './netns.js';

export interface TunOptions {
  /** Requested name; empty/undefined lets the kernel pick (tun0, ...). */
  name?: string;
  /** TAP (Ethernet frames) instead of TUN (IP packets). */
  tap?: boolean;
  /** IFF_MULTI_QUEUE: open the same name again for more queues. */
  multiQueue?: boolean;
  /** O_NONBLOCK, for readiness-driven reads (see the header comment). */
  nonBlock?: boolean;
  /** TUNSETPERSIST: the device outlives its fds (a killed process), so a restart reattaches to it. */
  persist?: boolean;
  /** Create the device inside this namespace (e.g. /run/netns/NAME). */
  netnsPath?: string;
}

export interface TunDevice {
  fd: number;
  /** The name the kernel gave the device. */
  name: string;
}

/** Opens (creating if needed) a TUN/TAP device; IFF_NO_PI always. Close with fs.closeSync(fd). */
export function openTun(opts: TunOptions = {}): TunDevice {
  const addon = loadNative();
  const nsFd = opts.netnsPath === undefined ? -1 : openNetnsFd(opts.netnsPath);
  try {
    return addon.tunOpen(opts.name ?? '', { tap: opts.tap, multiQueue: opts.multiQueue, nonBlock: opts.nonBlock, persist: opts.persist }, nsFd);
  } catch (e) {
    throw fromSystemError(e, { op: opts.tap ? 'open tap' : 'open tun', object: opts.name || '(kernel-named)' });
  } finally {
    if (nsFd >= 0) closeSync(nsFd);
  }
}

/** Calls onReadable whenever fd has data (level-triggered). Stop it before closing the fd. */
export function watchFd(fd: number, onReadable: (err: string | null) => void): NativeWatcher {
  return loadNative().watch(fd, onReadable);
}
