// install-cni into temporary directories: the relay lands as `weft`, executable;
// the conflist is one the runtimes of Debian 12 accept (cniVersion 1.0.0 plus a
// cniVersions list), declares the ips and mac capabilities, chains portmap only
// when a runtime can find it, and the operator is told what was done and what
// is missing (loopback). The conflist is also fed to the CNI protocol code, which
// must accept it and answer in 1.0.0's shape.

import { mkdtemp, readFile, rm, stat, writeFile, readdir, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cniInstallOptionsFrom, installCni, planInstall, renderConflist } from '../../agent/cni-install.js';
import { cniInstallFlags } from '../../agent/cni-install.js';
import { parseArgs } from '../../agent/flags.js';
import { handleCniRequest, type AttachmentService } from '../../cni-plugin/index.js';

interface Conflist {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  plugins: { type: string; runDir?: string; capabilities?: Record<string, boolean> }[];
}

const runDirFlag = { name: 'run-dir', type: 'string' as const, default: '/run/weft', help: '' };
const flagsFrom = (argv: string[]) => cniInstallOptionsFrom(parseArgs(argv, [...cniInstallFlags, runDirFlag]).values);

describe('installCni', () => {
  let dir: string;
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  async function setup(binFiles: string[] = [], otherFiles: string[] = []): Promise<{ relay: string; binDir: string; confDir: string; other: string }> {
    dir = await mkdtemp(join(tmpdir(), 'weft-cni-install-'));
    const relay = join(dir, 'relay');
    await writeFile(relay, '#!/bin/sh\n');
    const binDir = join(dir, 'bin');
    const other = join(dir, 'usr-lib-cni');
    await mkdir(binDir);
    await mkdir(other);
    for (const f of binFiles) await writeFile(join(binDir, f), '');
    for (const f of otherFiles) await writeFile(join(other, f), '');
    return { relay, binDir, confDir: join(dir, 'net.d'), other };
  }

  it('installs the relay and a 1.0.0 conflist with cniVersions and the ips/mac capabilities, atomically', async () => {
    const { relay, binDir, confDir, other } = await setup(['loopback']);
    const r = await installCni({ binDir, confDir, confName: '10-weft.conflist', networkName: 'weft', runDir: '/run/weft-x', relayPath: relay, pluginDirs: [other] });
    expect(r.plugin).toBe(join(binDir, 'weft'));
    expect((await stat(r.plugin)).mode & 0o777).toBe(0o755);
    const conf = JSON.parse(await readFile(r.conflist, 'utf8')) as Conflist;
    expect(conf).toEqual({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'weft',
      plugins: [{ type: 'weft', runDir: '/run/weft-x', capabilities: { ips: true, mac: true } }],
    });
    expect((await readdir(binDir)).sort()).toEqual(['loopback', 'weft']);
    expect(await readdir(confDir)).toEqual(['10-weft.conflist']);
    expect(r.notes.join('\n')).toMatch(/installed the plugin as .*bin\/weft/);
    expect(r.notes.join('\n')).toContain('portmap not chained');
    expect(r.warnings).toEqual([]);
  });

  it('chains portmap found in the bin dir, or in another plugin dir with a warning for runtimes that search only the bin dir', async () => {
    let s = await setup(['portmap', 'loopback']);
    let r = await installCni({ binDir: s.binDir, confDir: s.confDir, confName: 'a.conflist', networkName: 'n', runDir: '/run/weft', relayPath: s.relay, pluginDirs: [s.other] });
    expect((JSON.parse(await readFile(r.conflist, 'utf8')) as Conflist).plugins.map((p) => p.type)).toEqual(['weft', 'portmap']);
    expect(r.notes).toContain(`chained portmap (found in ${s.binDir})`);
    expect(r.warnings).toEqual([]);
    await rm(dir, { recursive: true, force: true });

    s = await setup(['loopback'], ['portmap']);
    r = await installCni({ binDir: s.binDir, confDir: s.confDir, confName: 'a.conflist', networkName: 'n', runDir: '/run/weft', relayPath: s.relay, pluginDirs: [s.other] });
    expect((JSON.parse(await readFile(r.conflist, 'utf8')) as Conflist).plugins.map((p) => p.type)).toEqual(['weft', 'portmap']);
    expect(r.warnings.join('\n')).toContain(`portmap is in ${s.other}`);

    r = await installCni({ binDir: s.binDir, confDir: s.confDir, confName: 'a.conflist', networkName: 'n', runDir: '/run/weft', relayPath: s.relay, pluginDirs: [s.other], portmap: 'no' });
    expect((JSON.parse(await readFile(r.conflist, 'utf8')) as Conflist).plugins.map((p) => p.type)).toEqual(['weft']);
  });

  it('warns when loopback is missing from the bin dir', async () => {
    const s = await setup();
    const r = await installCni({ binDir: s.binDir, confDir: s.confDir, confName: 'a.conflist', networkName: 'n', runDir: '/run/weft', relayPath: s.relay, pluginDirs: [] });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain(`${s.binDir} has no loopback plugin`);
  });

  it('--cni-version pins one version (no cniVersions list); an unknown version is refused before anything is written', async () => {
    const s = await setup(['loopback']);
    const r = await installCni({ ...flagsFrom(['--cni-bin-dir', s.binDir, '--cni-conf-dir', s.confDir, '--cni-version', '0.4.0']), relayPath: s.relay, pluginDirs: [] });
    const conf = JSON.parse(await readFile(r.conflist, 'utf8')) as Conflist;
    expect(conf.cniVersion).toBe('0.4.0');
    expect(conf).not.toHaveProperty('cniVersions');
    for (const bad of ['1.2.0', '1.0', 'latest', '']) {
      expect(() => flagsFrom(['--cni-version', bad]), bad).toThrow(/--cni-version .* weft speaks 0\.3\.0/);
    }
    expect(() => flagsFrom(['--cni-portmap', 'maybe'])).toThrow(/--cni-portmap "maybe": use auto, yes or no/);
    await expect(installCni({ binDir: join(dir, 'b2'), confDir: join(dir, 'c2'), confName: 'a.conflist', networkName: 'n', runDir: '/run/weft', relayPath: s.relay, cniVersion: '2.0.0' })).rejects.toThrow(/--cni-version/);
    await expect(stat(join(dir, 'c2'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a conflist name that is a path, and a missing relay', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cni-install-'));
    await expect(installCni({ binDir: dir, confDir: dir, confName: '../x.conflist', networkName: 'weft', runDir: '/run/weft', relayPath: join(dir, 'relay') })).rejects.toThrow(/relay .* is missing/);
    await writeFile(join(dir, 'relay'), '');
    await expect(installCni({ binDir: dir, confDir: dir, confName: '../x.conflist', networkName: 'weft', runDir: '/run/weft', relayPath: join(dir, 'relay') })).rejects.toThrow(/plain file name/);
  });
});

describe('planInstall', () => {
  it('warns when a pinned version above 1.0.0 is chained with portmap', () => {
    const p = planInstall({ binDir: '/b', cniVersion: '1.1.0' }, { portmapDir: '/b', loopbackInBinDir: true });
    expect(p.withPortmap).toBe(true);
    expect(p.warnings.join('\n')).toContain('accepts at most 1.0.0');
    expect(planInstall({ binDir: '/b' }, { portmapDir: '/b', loopbackInBinDir: true }).warnings).toEqual([]);
  });
  it('--cni-portmap yes chains it even when not found', () => {
    expect(planInstall({ binDir: '/b', portmap: 'yes' }, { loopbackInBinDir: true }).withPortmap).toBe(true);
    expect(planInstall({ binDir: '/b', portmap: 'auto' }, { loopbackInBinDir: true }).withPortmap).toBe(false);
  });
});

describe('the installed conflist through the CNI protocol', () => {
  // What a runtime hands the first plugin: the list's name and cniVersion injected into the plugin's entry
  // (old libcni), or the highest cniVersions entry it speaks (libcni 1.2+), plus runtimeConfig for declared capabilities.
  const asRuntimeSends = (version: string): string => {
    const list = JSON.parse(renderConflist({ networkName: 'weft', runDir: '/run/weft', withPortmap: true })) as Conflist;
    const { plugins, ...top } = list;
    return JSON.stringify({ ...top, cniVersion: version, ...plugins[0], runtimeConfig: { ips: ['10.42.7.9/24'], mac: 'c2:11:22:33:44:55' } });
  };
  const seen: unknown[] = [];
  const service: AttachmentService = {
    add: async (req) => {
      seen.push(req);
      return { interfaces: [{ name: 'vw1' }, { name: 'eth0', mac: req.mac ?? '', sandbox: req.netns, mtu: 1450 }], ips: [{ address: `${req.ip ?? ''}/24`, gateway: '10.42.7.1', interface: 1 }], routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1' }], dns: {} };
    },
    del: async () => undefined,
    check: async () => undefined,
    gc: async () => undefined,
    status: async () => ({ ready: true }),
  };
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

  it('is accepted at 1.0.0 and answered in 1.0.0 shape, with the requested ip and mac passed on', async () => {
    seen.length = 0;
    const r = await handleCniRequest({ env, stdin: asRuntimeSends('1.0.0') }, service);
    expect(r.exitCode, r.stdout).toBe(0);
    const res = JSON.parse(r.stdout) as { cniVersion: string; interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[] };
    expect(res.cniVersion).toBe('1.0.0');
    expect(res.ips[0]).toEqual({ address: '10.42.7.9/24', gateway: '10.42.7.1', interface: 1 });
    expect(res.interfaces[1]).not.toHaveProperty('mtu'); // a 1.1.0 field
    expect(seen[0]).toMatchObject({ ip: '10.42.7.9', ipField: 'runtimeConfig.ips', mac: 'c2:11:22:33:44:55' });
  });

  it('is accepted at 1.1.0 (newer libcni picks it from cniVersions), where STATUS exists', async () => {
    const r = await handleCniRequest({ env, stdin: asRuntimeSends('1.1.0') }, service);
    expect((JSON.parse(r.stdout) as { cniVersion: string }).cniVersion).toBe('1.1.0');
    const st = await handleCniRequest({ env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, stdin: asRuntimeSends('1.1.0') }, service);
    expect(st).toEqual({ stdout: '', exitCode: 0 });
  });
});
