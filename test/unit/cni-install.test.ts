// install-cni into temporary directories: the relay lands as `weft`, executable;
// the conflist names the run dir and chains portmap only when it is there.

import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installCni, renderConflist } from '../../agent/cni-install.js';

describe('installCni', () => {
  let dir: string;
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('installs the relay and a conflist atomically, leaving no temporary files', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cni-install-'));
    const relay = join(dir, 'relay');
    await writeFile(relay, '#!/bin/sh\n');
    const binDir = join(dir, 'bin');
    const confDir = join(dir, 'net.d');
    const r = await installCni({ binDir, confDir, confName: '10-weft.conflist', networkName: 'weft', runDir: '/run/weft-x', relayPath: relay });
    expect(r.plugin).toBe(join(binDir, 'weft'));
    expect((await stat(r.plugin)).mode & 0o777).toBe(0o755);
    const conf = JSON.parse(await readFile(r.conflist, 'utf8')) as { cniVersion: string; name: string; plugins: { type: string; runDir?: string }[] };
    expect(conf).toMatchObject({ cniVersion: '1.1.0', name: 'weft', plugins: [{ type: 'weft', runDir: '/run/weft-x' }] });
    expect(conf.plugins).toHaveLength(1);
    expect((await readdir(binDir)).sort()).toEqual(['weft']);
    expect(await readdir(confDir)).toEqual(['10-weft.conflist']);
  });

  it('chains portmap when the bin dir has it', () => {
    const conf = JSON.parse(renderConflist({ networkName: 'n', runDir: '/run/weft', withPortmap: true })) as { plugins: { type: string }[] };
    expect(conf.plugins.map((p) => p.type)).toEqual(['weft', 'portmap']);
  });

  it('refuses a conflist name that is a path, and a missing relay', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cni-install-'));
    await expect(installCni({ binDir: dir, confDir: dir, confName: '../x.conflist', networkName: 'weft', runDir: '/run/weft', relayPath: join(dir, 'relay') })).rejects.toThrow(/relay .* is missing/);
    await writeFile(join(dir, 'relay'), '');
    await expect(installCni({ binDir: dir, confDir: dir, confName: '../x.conflist', networkName: 'weft', runDir: '/run/weft', relayPath: join(dir, 'relay') })).rejects.toThrow(/plain file name/);
  });
});
