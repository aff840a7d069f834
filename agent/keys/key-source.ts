// Where the agent's keyring comes from, and when it changes: `--key-file`
// (re-read whenever the file changes, so each rotation step needs no
// restart), else the cluster key in etcd at `<prefix>/cluster-key`, which the
// first agent creates at random (create-if-absent), so gossip and the sealed
// udp backend are authenticated with zero configuration. Parsing and
// derivation are pure, in ipam/keys.ts; this file only reads and watches.
//
// The cluster key is also kept in the state dir (mode 0600), so an agent
// restarted while etcd is down still seals and opens with it at once (names
// keep resolving, the sealed tunnel keeps carrying); etcd is asked in the
// background, and if it holds another key (someone deleted and re-created
// it) that one wins and the copy is rewritten.

import { readFile, stat } from 'node:fs/promises';
import { readFileIfExists, writeFileAtomic } from '../../ipam/atomic-file.js';
import type { Logger } from 'pino';
import { backoffMs, systemClock, type Clock } from '../../ipam/clock.js';
import { WeftError, isWeftError } from '../../ipam/errors.js';
import { decodeKey, describeKeyring, generateKey, keyFromSecret, parseKeyFile, sameKeyring, type Keyring } from '../../ipam/keys.js';

/** The etcd side: `EtcdSubnetRegistry` implements it. */
export interface ClusterKeyStore {
  ensureClusterKey(candidate: string): Promise<string>;
}

export interface KeySourceOptions {
  readonly keyFile?: string;
  readonly store: ClusterKeyStore;
  /** `<prefix>/cluster-key`, for messages. */
  readonly clusterKeyName: string;
  readonly log: Logger;
  /** How often the key file is checked for changes; default 2 s. */
  readonly pollMs?: number;
  readonly clock?: Clock;
  /** Stops waiting for etcd. */
  readonly signal?: AbortSignal;
  /** Where the cluster key is kept between runs (the state dir); none: etcd only. */
  readonly cacheFile?: string;
}

export type KeyringListener = (ring: Keyring) => void;

async function readKeyFile(path: string): Promise<Keyring> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new WeftError('INVALID_ARGUMENT', `--key-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { flag: 'key-file' });
  }
  return parseKeyFile(text, `--key-file ${path}`);
}

function ringOf(text: string, name: string): Keyring {
  const secret = decodeKey(text);
  if (secret === undefined) {
    throw new WeftError('INVALID_CONFIG', `${name} is not a base64 key of 32 bytes: delete it (the next agent makes a new one) or use --key-file`, { key: name });
  }
  return { keys: [keyFromSecret(secret)] };
}

/** The cached copy, if there is a valid one; a broken copy is ignored (etcd is the truth). */
async function readCachedKey(path: string, log: Logger): Promise<string | undefined> {
  const text = (await readFileIfExists(path).catch(() => undefined))?.trim();
  if (text === undefined) return undefined;
  if (decodeKey(text) !== undefined) return text;
  log.warn({ cache: path }, 'the cached cluster key is not a key; asking etcd');
  return undefined;
}

/** etcd's create-if-absent of the cluster key, retried while etcd is unreachable. */
async function fetchClusterKey(o: KeySourceOptions, candidate: string): Promise<string> {
  const clock = o.clock ?? systemClock;
  for (let attempt = 0; ; attempt++) {
    try {
      return await o.store.ensureClusterKey(candidate);
    } catch (e) {
      if (!isWeftError(e, 'UNAVAILABLE') || o.signal?.aborted) throw e;
      o.log.warn({ err: e.message, attempt }, 'waiting for etcd to read the cluster key');
      await clock.sleep(backoffMs(attempt, 500, 10_000), o.signal);
    }
  }
}

export class KeySource {
  private ring: Keyring;
  private readonly listeners = new Set<KeyringListener>();
  private timer: NodeJS.Timeout | undefined;
  private lastMtime = 0;

  private constructor(
    ring: Keyring,
    private readonly o: KeySourceOptions,
  ) {
    this.ring = ring;
  }

  /** Reads the keyring: the key file at once (a bad file is an error), or the cluster key, waiting for etcd. */
  static async open(o: KeySourceOptions): Promise<KeySource> {
    if (o.keyFile !== undefined && o.keyFile !== '') {
      const ring = await readKeyFile(o.keyFile);
      const source = new KeySource(ring, o);
      source.lastMtime = (await stat(o.keyFile)).mtimeMs;
      source.watch(o.keyFile);
      o.log.info({ keyFile: o.keyFile, keys: describeKeyring(ring) }, 'keys from the key file');
      return source;
    }
    const cached = o.cacheFile === undefined ? undefined : await readCachedKey(o.cacheFile, o.log);
    if (cached !== undefined) {
      const source = new KeySource(ringOf(cached, o.clusterKeyName), o);
      o.log.info({ key: o.clusterKeyName, keys: describeKeyring(source.ring), cache: o.cacheFile }, 'keys from the cached cluster key; confirming with etcd');
      void source.confirm(cached);
      return source;
    }
    const text = await fetchClusterKey(o, generateKey());
    const source = new KeySource(ringOf(text, o.clusterKeyName), o);
    await source.cache(text);
    o.log.info({ key: o.clusterKeyName, keys: describeKeyring(source.ring) }, 'keys from the cluster key in etcd');
    return source;
  }

  /** Asks etcd (as long as it takes) whether the cached key is the cluster's; adopts etcd's if not. */
  private async confirm(cached: string): Promise<void> {
    try {
      const text = await fetchClusterKey(this.o, cached);
      if (text === cached) return;
      this.ring = ringOf(text, this.o.clusterKeyName);
      await this.cache(text);
      this.o.log.warn({ key: this.o.clusterKeyName, keys: describeKeyring(this.ring) }, 'etcd holds another cluster key than the cached one; using etcd\'s');
      for (const fn of this.listeners) fn(this.ring);
    } catch (e) {
      if (!this.o.signal?.aborted) this.o.log.error({ err: (e as Error).message }, 'cannot confirm the cached cluster key with etcd; keeping it');
    }
  }

  private async cache(text: string): Promise<void> {
    if (this.o.cacheFile === undefined) return;
    await writeFileAtomic(this.o.cacheFile, text + '\n', 0o600).catch((e: unknown) =>
      this.o.log.warn({ err: (e as Error).message, cache: this.o.cacheFile }, 'cannot keep a copy of the cluster key; a restart while etcd is down will wait for etcd'),
    );
  }

  current(): Keyring {
    return this.ring;
  }

  /** Calls fn with every new keyring (not the current one); returns an unsubscribe. */
  subscribe(fn: KeyringListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private watch(path: string): void {
    this.timer = setInterval(() => void this.reload(path), this.o.pollMs ?? 2000);
    this.timer.unref();
  }

  /** Re-reads the file when it changed; a broken file keeps the old keys (and says so). */
  async reload(path: string): Promise<void> {
    try {
      const mtime = (await stat(path)).mtimeMs;
      if (mtime === this.lastMtime) return;
      this.lastMtime = mtime;
      const ring = await readKeyFile(path);
      if (sameKeyring(ring, this.ring)) return;
      this.ring = ring;
      this.o.log.info({ keyFile: path, keys: describeKeyring(ring) }, 'key file changed; using the new keys');
      for (const fn of this.listeners) fn(ring);
    } catch (e) {
      this.o.log.error({ keyFile: path, err: (e as Error).message }, 'key file unreadable or invalid; keeping the keys in use');
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
