// Loads weft's native addon (native/src/weft_native.c) and types its surface.
// The addon is built from source by `sh native/build.sh` (no prebuilt
// binaries), so a checkout that skipped the build must fail with an error
// that says exactly that, not with a bare MODULE_NOT_FOUND. Loaded lazily so
// that importing the netlink module (e.g. for its pure helpers) never needs it.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../../ipam/errors.js';

export interface NativeWatcher {
  stop(): void;
  ref(): void;
  unref(): void;
}

export interface NativeAddon {
  /** NETLINK_ROUTE socket, non-blocking, created inside nsFd's netns (-1: ours). */
  netlinkOpen(nsFd: number, rcvbuf: number): { fd: number; portId: number };
  netlinkSend(fd: number, buf: Buffer): number;
  /** One datagram, or null when the socket has nothing queued. */
  netlinkRecv(fd: number): Buffer | null;
  /** Level-triggered readability; `err` is a libuv error name when polling fails. */
  watch(fd: number, onReadable: (err: string | null) => void): NativeWatcher;
  tunOpen(
    name: string,
    opts: { tap?: boolean; multiQueue?: boolean; nonBlock?: boolean; persist?: boolean },
    nsFd: number,
  ): { fd: number; name: string };
  closeFd(fd: number): void;
}

/** Where the build puts the addon, relative to this file in source and in dist/. */
function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const rel = 'native/build/Release/weft_native.node';
  // encap/netlink/ in source, dist/encap/netlink/ after tsc.
  return [resolve(here, '../..', rel), resolve(here, '../../..', rel)];
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = candidates().find((p) => existsSync(p));
  if (!path) {
    throw new WeftError(
      'INTERNAL',
      `weft native addon not built (looked for ${candidates()[0]}); run \`sh native/build.sh\` (needs make, g++, python3 and Node's headers)`,
      { candidates: candidates() },
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}
