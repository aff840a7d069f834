// Unit tests for ipam/atomic-file against a real temp dir: content, mode,
// replacement, no temp files left behind, and errors that are not ENOENT.
import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileIfExists, writeFileAtomic } from '../../ipam/atomic-file.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes a new file with the requested mode despite the umask', async () => {
    const path = join(dir, 'subnet.env');
    await writeFileAtomic(path, 'A=1\n', 0o600);
    expect(await readFile(path, 'utf8')).toBe('A=1\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await writeFileAtomic(join(dir, 'other'), 'x', 0o666);
    expect((await stat(join(dir, 'other'))).mode & 0o777).toBe(0o666);
  });

  it('replaces an existing file and leaves no temp files', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, 'old');
    await writeFileAtomic(path, Buffer.from('new content'));
    expect(await readFile(path, 'utf8')).toBe('new content');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('survives many concurrent writers: the file holds one complete version', async () => {
    const path = join(dir, 'race');
    const versions = Array.from({ length: 20 }, (_, i) => `version ${i} `.repeat(1000));
    await Promise.all(versions.map((v) => writeFileAtomic(path, v)));
    expect(versions).toContain(await readFile(path, 'utf8'));
    expect(await readdir(dir)).toEqual(['race']);
  });

  it('fails cleanly when the directory does not exist or the target is a directory', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(join(dir, 'adir'));
    await expect(writeFileAtomic(join(dir, 'adir'), 'x')).rejects.toBeTruthy();
    expect((await readdir(dir)).sort()).toEqual(['adir']);
  });
});

describe('readFileIfExists', () => {
  it('returns the text, or undefined when missing', async () => {
    const path = join(dir, 'f');
    expect(await readFileIfExists(path)).toBeUndefined();
    await writeFile(path, 'hello');
    expect(await readFileIfExists(path)).toBe('hello');
  });

  it('throws other errors', async () => {
    await expect(readFileIfExists(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});
