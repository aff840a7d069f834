// Tests of the test lab itself, against the real kernel and a real etcd:
// if these pass, a failing integration test elsewhere is about weft, not the lab.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertRoot,
  cleanupLeftovers,
  createLab,
  isPidAlive,
  labName,
  makeTestCerts,
  newRunId,
  run,
  startEtcd,
  UNDERLAY_GATEWAY,
} from '../lab/index.js';
import type { Lab, LabHost } from '../lab/index.js';
import { runTmpDir } from '../lab/names.js';
import { procStartTime } from '../lab/scope.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
const ETCDCTL_ENV = { ETCDCTL_API: '3' };

function etcdctl(host: LabHost, args: string[], allowFail = false) {
  return host.exec(['etcdctl', '--endpoints', ETCD, '--command-timeout=1s', ...args], {
    env: ETCDCTL_ENV,
    allowFail,
    timeoutMs: 10_000,
  });
}

async function netnsNames(): Promise<string[]> {
  // `ip netns list` may complain about podman placeholders on stderr; the list on stdout is what counts.
  const r = await run(['ip', 'netns', 'list'], { allowFail: true });
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

beforeAll(() => assertRoot());

describe('lab with hosts and etcd', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await createLab({ hosts: 2 });
  });
  afterAll(async () => lab?.destroy());

  it('names hosts after the run and gives each an underlay address on eth0', async () => {
    const [h1, h2] = lab.hosts;
    expect(h1).toMatchObject({ index: 1, ip: '198.18.0.11', iface: 'eth0', name: labName(lab.runId, 'h1') });
    expect(h2?.netnsPath).toBe(`/run/netns/${h2?.name}`);
    const addr = await h1!.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.stdout).toContain('198.18.0.11/16');
    const mtu = await lab.runInUnderlay(['cat', '/sys/class/net/br0/mtu']);
    expect(mtu.stdout.trim()).toBe('1500');
  });

  it('lets two hosts ping each other over the underlay', async () => {
    const [h1, h2] = lab.hosts;
    await Promise.all([
      h1!.exec(['ping', '-c', '2', '-W', '1', h2!.ip]),
      h2!.exec(['ping', '-c', '2', '-W', '1', h1!.ip]),
    ]);
  });

  it('lets every host reach etcd', async () => {
    for (const h of lab.hosts) {
      await etcdctl(h, ['put', `/lab/${h.name}`, h.ip]);
      const got = await etcdctl(lab.hosts[0]!, ['get', '--print-value-only', `/lab/${h.name}`]);
      expect(got.stdout.trim()).toBe(h.ip);
    }
  });

  it('freezes and thaws etcd', async () => {
    lab.etcd.freeze();
    try {
      const frozen = await etcdctl(lab.hosts[0]!, ['put', '/lab/frozen', 'x'], true);
      expect(frozen.code).not.toBe(0);
    } finally {
      lab.etcd.thaw();
    }
    await etcdctl(lab.hosts[0]!, ['put', '/lab/frozen', 'y']);
  });

  it('keeps data across stop and start', async () => {
    await etcdctl(lab.hosts[1]!, ['put', '/lab/durable', 'kept']);
    const before = lab.etcd.pid;
    await lab.etcd.stop();
    const down = await etcdctl(lab.hosts[1]!, ['get', '/lab/durable'], true);
    expect(down.code).not.toBe(0);
    await lab.etcd.start();
    expect(lab.etcd.pid).not.toBe(before);
    const got = await etcdctl(lab.hosts[1]!, ['get', '--print-value-only', '/lab/durable']);
    expect(got.stdout.trim()).toBe('kept');
  });

  it('adds a host later that joins the same underlay', async () => {
    const h3 = await lab.addHost();
    expect(h3).toMatchObject({ index: 3, ip: '198.18.0.13' });
    await h3.exec(['ping', '-c', '1', '-W', '1', lab.hosts[0]!.ip]);
  });

  it('adds empty container namespaces with unique names', async () => {
    const host = lab.hosts[0]!;
    const [a, b] = await Promise.all([host.addContainer('web'), host.addContainer('a-very-long-container-label')]);
    expect(a.name).not.toBe(b.name);
    for (const c of [a, b]) {
      expect(c.name.startsWith(labName(lab.runId))).toBe(true);
      expect(c.name.length).toBeLessThanOrEqual(40);
      const links = await c.exec(['ip', '-o', 'link']);
      expect(links.stdout.trim().split('\n')).toHaveLength(1);
      expect(links.stdout).toMatch(/lo: <LOOPBACK,UP/);
    }
  });

  it('runs commands through the holder, in the host netns and a shared mount namespace', async () => {
    const host = lab.hosts[1]!;
    const netnsInode = (await run(['stat', '-L', '-c', '%i', host.netnsPath])).stdout.trim();
    const probe = ['sh', '-c', 'stat -L -c %i /proc/self/ns/net; readlink /proc/self/ns/mnt; ls /sys/fs/cgroup'];
    const first = (await host.execInHolder(probe)).stdout.split('\n');
    const second = (await host.execInHolder(probe)).stdout.split('\n');
    expect(first[0]).toBe(netnsInode);
    expect(second[1]).toBe(first[1]);
    expect(first[1]).not.toBe(await run(['readlink', '/proc/self/ns/mnt']).then((r) => r.stdout.trim()));
    expect(first.slice(2).join(' ')).toMatch(/\S/);
    const holder = await host.holder();
    expect(holder.pid).toBe((await host.holder()).pid);
  });

  it('tracks spawned processes and their output', async () => {
    const p = lab.hosts[0]!.spawn(['sh', '-c', 'echo hello from $(hostname); sleep 30']);
    await p.waitForOutput(/hello from/, 5000);
    p.kill('SIGTERM');
    expect((await p.exited).signal).toBe('SIGTERM');
    await expect(lab.hosts[0]!.exec(['sh', '-c', 'echo oops >&2; exit 3'])).rejects.toThrow(/exit 3[\s\S]*oops/);
  });
});

describe('destroy', () => {
  it('kills processes and removes every namespace, twice without error', async () => {
    const lab = await createLab({ hosts: 2, etcd: false, mtu: 1400 });
    const mtu = await lab.hosts[0]!.exec(['cat', '/sys/class/net/eth0/mtu']);
    expect(mtu.stdout.trim()).toBe('1400');
    await lab.hosts[0]!.addContainer();
    const sleeper = lab.hosts[1]!.spawn(['sleep', '300']);
    const holder = await lab.hosts[0]!.holder();
    const mine = (await netnsNames()).filter((n) => n.startsWith(labName(lab.runId)));
    expect(mine).toHaveLength(4);
    await lab.destroy();
    await lab.destroy();
    expect((await netnsNames()).filter((n) => n.startsWith(labName(lab.runId)))).toEqual([]);
    expect(isPidAlive(sleeper.pid)).toBe(false);
    expect(isPidAlive(holder.pid)).toBe(false);
    expect(existsSync(lab.tmpDir)).toBe(false);
    expect(() => lab.etcd).toThrow(/etcd: false/);
  });
});

describe('cleanupLeftovers', () => {
  it('removes namespaces, processes (in and out of namespaces) and temp dirs of a dead owner', async () => {
    const gone = spawn('true');
    const deadPid = await new Promise<number>((resolve) => gone.on('exit', () => resolve(gone.pid!)));
    const runId = `${deadPid}-${newRunId().split('-')[1]}`;
    const ns = labName(runId, 'h1');
    await run(['ip', 'netns', 'add', ns]);
    const orphan = spawn('ip', ['netns', 'exec', ns, 'sleep', '300'], { stdio: 'ignore' });
    const orphanExit = new Promise((resolve) => orphan.on('exit', resolve));
    const dir = runTmpDir(runId);
    await mkdir(dir, { recursive: true });
    // A process outside any namespace (like a standalone etcd) is found through the run's pid record.
    const outside = spawn('sleep', ['300'], { stdio: 'ignore' });
    const outsideExit = new Promise((resolve) => outside.on('exit', resolve));
    await writeFile(join(dir, 'pids'), `${outside.pid} ${procStartTime(outside.pid!)}\n`);
    // Wait until the orphan really sits in the namespace, or cleanup could miss it.
    for (let i = 0; i < 50 && !(await run(['ip', 'netns', 'pids', ns])).stdout.trim(); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }

    await cleanupLeftovers();

    expect(await netnsNames()).not.toContain(ns);
    expect(existsSync(dir)).toBe(false);
    await Promise.all([orphanExit, outsideExit]);
    expect(isPidAlive(orphan.pid!)).toBe(false);
    expect(isPidAlive(outside.pid!)).toBe(false);
  });
});

describe('standalone etcd', () => {
  it('runs on loopback with free ports and keeps data across restart', async () => {
    const etcd = await startEtcd();
    try {
      expect(etcd.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await etcd.etcdctl(['put', 'k', 'v']);
      await etcd.restart();
      expect((await etcd.etcdctl(['get', '--print-value-only', 'k'])).stdout.trim()).toBe('v');
    } finally {
      await etcd.destroy();
    }
    expect(existsSync(etcd.dataDir)).toBe(false);
  });
});

describe('TLS etcd', () => {
  const certDir = runTmpDir(newRunId());
  let lab: Lab;

  beforeAll(async () => {
    const certs = await makeTestCerts(certDir, { serverIp: UNDERLAY_GATEWAY });
    lab = await createLab({
      hosts: 1,
      etcdTls: { caFile: certs.ca, certFile: certs.server.cert, keyFile: certs.server.key },
    });
  });
  afterAll(async () => {
    await lab?.destroy();
    await rm(certDir, { recursive: true, force: true });
  });

  const tlsEtcdctl = (flags: string[]) =>
    lab.hosts[0]!.exec(
      ['etcdctl', '--endpoints', `https://${UNDERLAY_GATEWAY}:2379`, '--command-timeout=2s', ...flags, 'put', 'secure', 'yes'],
      { env: ETCDCTL_ENV, allowFail: true, timeoutMs: 10_000 },
    );

  it('serves https and accepts a client certificate', async () => {
    expect(lab.etcd.endpoint).toBe(`https://${UNDERLAY_GATEWAY}:2379`);
    const ok = await tlsEtcdctl([
      '--cacert', join(certDir, 'ca.crt'), '--cert', join(certDir, 'client.crt'), '--key', join(certDir, 'client.key'),
    ]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });

  it('refuses a client without a certificate', async () => {
    const refused = await tlsEtcdctl(['--cacert', join(certDir, 'ca.crt')]);
    expect(refused.code).not.toBe(0);
  });
});
