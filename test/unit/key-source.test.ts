import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KeySource, type ClusterKeyStore } from '../../agent/keys/key-source.js';
import { WeftError, isWeftError } from '../../ipam/errors.js';
import { generateKey, type Keyring } from '../../ipam/keys.js';
import { FakeClock } from './support/fake-clock.js';

const log = pino({ level: 'silent' });

/** etcd's create-if-absent, in memory; `down` makes it answer as an unreachable etcd would. */
class MemoryKeyStore implements ClusterKeyStore {
  value: string | undefined;
  down = 0;
  async ensureClusterKey(candidate: string): Promise<string> {
    if (this.down > 0) {
      this.down--;
      throw new WeftError('UNAVAILABLE', 'etcd unreachable');
    }
    this.value ??= candidate;
    return this.value;
  }
}

const dirs: string[] = [];
afterEach(async () => Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true }))));

async function keyFile(text: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'weft-keys-'));
  dirs.push(d);
  const f = join(d, 'keys');
  await writeFile(f, text);
  return f;
}

const b64 = (r: Keyring): string[] => r.keys.map((k) => k.secret.toString('base64'));

describe('KeySource', () => {
  it('without a key file, every agent ends up with the one cluster key the first created', async () => {
    const store = new MemoryKeyStore();
    const [a, b] = await Promise.all([1, 2].map(() => KeySource.open({ store, clusterKeyName: '/p/cluster-key', log })));
    expect(b64(a!.current())).toEqual([store.value]);
    expect(b64(b!.current())).toEqual([store.value]);
  });

  it('waits while etcd is unreachable', async () => {
    const store = new MemoryKeyStore();
    store.down = 2;
    const clock = new FakeClock(true);
    const opened = await KeySource.open({ store, clusterKeyName: '/p/cluster-key', log, clock });
    expect(clock.sleeps).toHaveLength(2);
    expect(b64(opened.current())).toEqual([store.value]);
  });

  it('refuses a garbage cluster key with a message naming the key', async () => {
    const store = new MemoryKeyStore();
    store.value = 'garbage';
    const e = await KeySource.open({ store, clusterKeyName: '/p/cluster-key', log }).catch((x: unknown) => x);
    expect(isWeftError(e, 'INVALID_CONFIG')).toBe(true);
    expect((e as Error).message).toContain('/p/cluster-key');
  });

  it('re-reads the key file when it changes and keeps the old keys when the new file is broken', async () => {
    const [k1, k2] = [generateKey(), generateKey()];
    const f = await keyFile(`${k1}\n`);
    const src = await KeySource.open({ keyFile: f, store: new MemoryKeyStore(), clusterKeyName: 'x', log, pollMs: 60_000 });
    const seen: string[][] = [];
    src.subscribe((r) => seen.push(b64(r)));
    await writeFile(f, `${k1}\n${k2}\n`);
    await utimes(f, new Date(), new Date(Date.now() + 1000));
    await src.reload(f);
    expect(seen).toEqual([[k1, k2]]);
    await writeFile(f, 'broken\n');
    await utimes(f, new Date(), new Date(Date.now() + 2000));
    await src.reload(f);
    expect(b64(src.current())).toEqual([k1, k2]);
    src.close();
  });

  it('keeps the cluster key in the state dir (0600) and starts from that copy while etcd is down', async () => {
    const d = await mkdtemp(join(tmpdir(), 'weft-keys-'));
    dirs.push(d);
    const cacheFile = join(d, 'cluster-key');
    const store = new MemoryKeyStore();
    const first = await KeySource.open({ store, clusterKeyName: 'k', log, cacheFile });
    expect((await stat(cacheFile)).mode & 0o777).toBe(0o600);
    store.down = 1_000_000; // etcd gone for good
    const clock = new FakeClock();
    const again = await KeySource.open({ store, clusterKeyName: 'k', log, cacheFile, clock });
    expect(b64(again.current())).toEqual(b64(first.current()));
  });

  it('adopts etcd\'s cluster key when the cached copy differs, and tells subscribers', async () => {
    const d = await mkdtemp(join(tmpdir(), 'weft-keys-'));
    dirs.push(d);
    const cacheFile = join(d, 'cluster-key');
    const old = generateKey();
    await writeFile(cacheFile, old + '\n');
    const store = new MemoryKeyStore();
    store.value = generateKey();
    const src = await KeySource.open({ store, clusterKeyName: 'k', log, cacheFile });
    const seen: string[][] = [];
    src.subscribe((r) => seen.push(b64(r)));
    await vi.waitFor(() => expect(b64(src.current())).toEqual([store.value]));
    expect(seen).toEqual([[store.value]]);
    expect((await readFile(cacheFile, 'utf8')).trim()).toBe(store.value);
  });

  it('a missing key file is an error naming the flag', async () => {
    const e = await KeySource.open({ keyFile: '/nonexistent/weft-keys', store: new MemoryKeyStore(), clusterKeyName: 'x', log }).catch((x: unknown) => x);
    expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
    expect((e as Error).message).toContain('--key-file /nonexistent/weft-keys');
  });
});
