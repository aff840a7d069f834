// INTERIM key source for the sealed udp backend, until the lead's
// agent/keys/key-source.ts (--key-file / WEFT_KEY_FILE, or the cluster key in
// etcd) lands on main; then createBackend takes that one and this file goes.
// Reads WEFT_KEY_FILE: base64 32-byte keys, one per line, '#' comments; the
// first seals, all open. The key id is the first 4 bytes of SHA-256(key), so
// every host derives the same id without configuring one. The file is
// re-read when it changes (polled once a second), so rotation needs no restart;
// a file that does not parse keeps the previous keyring and logs why.

import { createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { WeftError } from '../ipam/errors.js';
import type { Keyring } from '../encap/udp/index.js';
import type { UdpKeySource } from '../encap/udp/index.js';

export function parseKeyText(text: string, source: string): Keyring {
  const keys = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const secret = Buffer.from(line, 'base64');
    if (secret.length !== 32 || secret.toString('base64') !== line) {
      throw new WeftError('INVALID_ARGUMENT', `${source} line ${i + 1}: not a base64 32-byte key (make one with: head -c 32 /dev/urandom | base64)`, { line: i + 1 });
    }
    keys.push({ id: createHash('sha256').update(secret).digest().readUInt32BE(0), secret });
  }
  if (keys.length === 0) throw new WeftError('INVALID_ARGUMENT', `${source}: no key in the file`, {});
  return { keys };
}

export function keyFileSource(path: string, log: Logger): UdpKeySource & { close(): void } {
  let ring = parseKeyText(readFileSync(path, 'utf8'), path);
  const subs = new Set<() => void>();
  const onChange = (): void => {
    try {
      const next = parseKeyText(readFileSync(path, 'utf8'), path);
      if (JSON.stringify(next.keys.map((k) => k.id)) === JSON.stringify(ring.keys.map((k) => k.id))) return;
      ring = next;
      for (const fn of subs) fn();
    } catch (e) {
      log.error({ err: (e as Error).message, path }, 'key file unreadable; keeping the previous keys');
    }
  };
  watchFile(path, { interval: 1000 }, onChange);
  return {
    current: () => ring,
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    close: () => unwatchFile(path, onChange),
  };
}
