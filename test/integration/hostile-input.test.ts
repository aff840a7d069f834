// The agent's doors under hostile or unlucky input (issue 7, item 4). Each case
// sends the exact input that once broke something, then asserts that the agent
// is still ready and that nothing was created in any namespace: the lab host's
// links, addresses and routes, the container's, and the root namespace's weft
// veths are as before, and the agent holds no new attachment. The relay cases
// without an agent use a fake one on a unix socket that dies mid-request.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer, connect, Server as NetServerClass, type Server as NetServer, type Socket } from 'node:net';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent, socketPathOf } from '../../agent/api/client.js';
import { MAX_BODY, startApiServer } from '../../agent/api/server.js';
import type { AttachmentList } from '../../agent/api/types.js';
import { assertRoot, createLab, run, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabHost } from '../lab/index.js';
import { repoPath, startAgent, weft, type WeftAgent } from '../lab/weft.js';
import { execRunner, installRelay, RELAY_BUILD, WeftPlugin } from './support/cni.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;

/** One raw request over the agent's socket; the reply as text (whatever arrived until close or 3 s). */
function raw(socketPath: string, request: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const c: Socket = connect(socketPath);
    let got = '';
    const done = (): void => {
      c.destroy();
      resolve(got);
    };
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('end', done);
    c.on('error', done);
    c.setTimeout(3000, done);
    c.write(request);
  });
}

async function ipText(ns: string | undefined, what: string[]): Promise<string> {
  const r = await run(['ip', ...(ns === undefined ? [] : ['-n', ns]), ...what], { allowFail: true });
  return r.stdout;
}

/**
 * What a request could have created in a namespace, without what the kernel
 * changes by itself (link flags, IPv6 DAD, "linkdown"): link names and
 * masters, IPv4 addresses, IPv4 routes of every table.
 */
async function nsState(ns: string | undefined): Promise<string[]> {
  const links = (JSON.parse((await ipText(ns, ['-j', 'link', 'show'])) || '[]') as { ifname: string; master?: string }[]).map((l) => `link ${l.ifname} ${l.master ?? ''}`);
  const addrs = (await ipText(ns, ['-o', '-4', 'addr', 'show'])).split('\n').filter(Boolean).map((l) => { const f = l.split(/\s+/); return `addr ${f[1]} ${f[3]}`; });
  const routes = (await ipText(ns, ['-4', 'route', 'show', 'table', 'all'])).split('\n').filter(Boolean).map((l) => `route ${l.replace(/ linkdown/g, '').trim()}`);
  return [...links, ...addrs, ...routes].sort();
}

describe('hostile input to the agent API and the CNI relay', () => {
  let lab: Lab;
  let host: LabHost;
  let agent: WeftAgent;
  let ctr: LabContainer;
  let plugin: WeftPlugin;
  let sock: string;

  /** Everything a bad request could have created, as text, to compare before and after. */
  const world = async (): Promise<Record<string, unknown>> => ({
    host: await nsState(host.name),
    container: await nsState(ctr.name),
    // The root namespace is only read: weft's veths there (this test must never make one).
    rootVeths: (await nsState(undefined)).filter((l) => /^link vw[0-9a-f]{12} /.test(l)),
    attachments: (await callAgent<AttachmentList>(agent.runDir, 'GET', '/v1/attachments')).attachments.map((a) => a.containerId),
  });

  /** Runs `hostile`, then asserts the agent is ready and the world unchanged. */
  async function unchanged(hostile: () => Promise<void>): Promise<void> {
    const before = await world();
    await hostile();
    expect(agent.proc.running, agent.proc.stderr.slice(-2000)).toBe(true);
    expect((await agent.status()).ready).toBe(true);
    expect(await world()).toEqual(before);
  }

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 1 });
    host = lab.hosts[0]!;
    const set = await weft(host, ['config', 'set', '{"Network":"10.42.0.0/16"}', '--etcd-endpoints', ETCD]);
    expect(set.code, set.stderr).toBe(0);
    agent = await startAgent(host, { dir: join(lab.tmpDir, 'agent'), etcd: ETCD, args: ['--iface', 'eth0'] });
    const st = await agent.ready();
    sock = socketPathOf(agent.runDir);
    ctr = await host.addContainer('hostile');
    const binDir = join(lab.tmpDir, 'cni-bin');
    await installRelay(binDir);
    plugin = new WeftPlugin(host, binDir, execRunner(host), agent.runDir, st.subnet!);
  });
  afterAll(async () => lab?.destroy());

  it('GET //[ and other malformed request targets get 400; the agent lives on', async () => {
    await unchanged(async () => {
      for (const target of ['//[', 'http://weft/v1/status', '/%zz', '*']) {
        const reply = await raw(sock, `GET ${target} HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n`);
        expect(reply, target).toMatch(/^HTTP\/1\.1 40[04] /);
      }
      expect(await raw(sock, Buffer.from([0, 1, 2, 255, 13, 10, 13, 10]))).toMatch(/^HTTP\/1\.1 400 /);
    });
  });

  it('a wrong method on a known path is 405 naming the allowed one', async () => {
    await unchanged(async () => {
      const reply = await raw(sock, 'DELETE /v1/attach HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n');
      expect(reply).toMatch(/^HTTP\/1\.1 405 /);
      expect(reply).toMatch(/\r\nallow: POST\r\n/i);
      expect(await raw(sock, 'GET /v1/cni HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 405 /);
    });
  });

  it('a body over the limit is 413, whether declared or sent', async () => {
    await unchanged(async () => {
      const declared = await raw(sock, `POST /v1/attach HTTP/1.1\r\nHost: weft\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n{}`);
      expect(declared).toMatch(/^HTTP\/1\.1 413 /);
      const big = Buffer.alloc(MAX_BODY + 10, 0x20);
      const chunked = await raw(sock, Buffer.concat([Buffer.from('POST /v1/attach HTTP/1.1\r\nHost: weft\r\nTransfer-Encoding: chunked\r\n\r\n'), Buffer.from(`${big.length.toString(16)}\r\n`), big, Buffer.from('\r\n0\r\n\r\n')]));
      expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    });
  });

  it('the socket is 0600 in place, with no private directory left behind', async () => {
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect((await readdir(agent.runDir)).filter((n) => n.startsWith('.weft-'))).toEqual([]);
  });

  it('attaching into the host namespace (--pid 1, /proc/self/ns/net, CNI_NETNS=/proc/1/ns/net) is refused', async () => {
    await unchanged(async () => {
      // PID 1's namespace is refused too; on this machine it cannot even be opened (EACCES), elsewhere it is the host's.
      const own = "host's own network namespace";
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ pid: 1 }, /\/proc\/1\/ns\/net/],
        [{ netns: '/proc/1/ns/net' }, /\/proc\/1\/ns\/net/],
        [{ netns: '/proc/self/ns/net' }, new RegExp(own)],
        [{ pid: agent.proc.pid }, new RegExp(own)],
        [{ netns: host.netnsPath }, new RegExp(own)],
      ];
      for (const [target, says] of cases) {
        const err = await callAgent(agent.runDir, 'POST', '/v1/attach', { containerId: 'own-ns', ...target }).then(
          () => undefined,
          (e: Error & { code?: string }) => e,
        );
        expect(err?.code, JSON.stringify(target)).toBe('INVALID_ARGUMENT');
        expect(err?.message).toMatch(says);
      }
      for (const [netns, says] of [['/proc/1/ns/net', /\/proc\/1\/ns\/net/], ['/proc/self/ns/net', new RegExp(own)]] as const) {
        const r = await plugin.call({ command: 'ADD', containerId: 'own-ns-cni', netns, ifname: 'eth0', config: plugin.config('1.0.0') });
        expect(r.code).not.toBe(0);
        const out = JSON.parse(r.stdout) as { code: number; details: string };
        expect(out.code, r.stdout).toBe(7);
        expect(out.details).toMatch(says);
      }
    });
  });

  it('interface names the kernel would refuse or read differently are 400 (API) and code 4 (CNI), never KERNEL', async () => {
    await unchanged(async () => {
      for (const ifname of ['ééééééééé', 'eth%d', 'all', 'default', 'a\u0000b', 'a b', 'x/y', 'a\u001bb']) {
        const err = await callAgent(agent.runDir, 'POST', '/v1/attach', { containerId: 'badif', netns: ctr.netnsPath, ifname }).then(
          () => undefined,
          (e: Error & { code?: string }) => e,
        );
        expect(err?.code, JSON.stringify(ifname)).toBe('INVALID_ARGUMENT');
        expect(err?.message).toMatch(/^ifname: /);
      }
      // NUL cannot travel in an environment variable; the others can.
      for (const ifname of ['ééééééééé', 'eth%d', 'all']) {
        const r = await plugin.call({ command: 'ADD', containerId: 'badif-cni', netns: ctr.netnsPath, ifname, config: plugin.config('1.0.0') });
        expect((JSON.parse(r.stdout) as { code: number }).code, `${ifname}: ${r.stdout}`).toBe(4);
      }
    });
  });

  it('a name with control characters is 400', async () => {
    await unchanged(async () => {
      const err = await callAgent(agent.runDir, 'POST', '/v1/attach', { containerId: 'ctl', netns: ctr.netnsPath, name: 'web\u001b[2J' }).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      expect(err?.code).toBe('INVALID_ARGUMENT');
      const r = await plugin.call({ command: 'ADD', containerId: 'ctl-cni', netns: ctr.netnsPath, ifname: 'eth0', args: 'K8S_POD_NAME=web\u0007', config: plugin.config('1.0.0') });
      expect((JSON.parse(r.stdout) as { code: number }).code, r.stdout).toBe(7);
    });
  });

  it('an interface name already taken in the container is 409 CONFLICT (CNI 100), not 500 KERNEL, and reserves nothing', async () => {
    await ctr.exec(['ip', 'link', 'add', 'eth5', 'type', 'veth', 'peer', 'name', 'eth6']);
    try {
      await unchanged(async () => {
        const err = await callAgent(agent.runDir, 'POST', '/v1/attach', { containerId: 'taken', netns: ctr.netnsPath, ifname: 'eth5' }).then(
          () => undefined,
          (e: Error & { code?: string }) => e,
        );
        expect(err?.code).toBe('CONFLICT');
        expect(err?.message).toContain('eth5');
        const r = await plugin.call({ command: 'ADD', containerId: 'taken-cni', netns: ctr.netnsPath, ifname: 'eth5', config: plugin.config('1.0.0') });
        expect((JSON.parse(r.stdout) as { code: number }).code, r.stdout).toBe(100);
      });
    } finally {
      await ctr.exec(['ip', 'link', 'del', 'eth5']);
    }
  });

  it('a second interface in one namespace gets its address, and the namespace keeps one default route', async () => {
    const c = await host.addContainer('twoif');
    const first = await callAgent<{ ip: string; routes: unknown[] }>(agent.runDir, 'POST', '/v1/attach', { containerId: 'twoif', netns: c.netnsPath });
    const second = await callAgent<{ ip: string; routes: unknown[] }>(agent.runDir, 'POST', '/v1/attach', { containerId: 'twoif', ifname: 'eth1', netns: c.netnsPath });
    expect(second.ip).not.toBe(first.ip);
    expect(second.routes).toEqual([]);
    const defaults = (await ipText(c.name, ['route', 'show', 'default'])).trim().split('\n');
    expect(defaults).toHaveLength(1);
    expect(defaults[0]).toContain('dev eth0');
    expect(await ipText(c.name, ['-o', '-4', 'addr', 'show', 'dev', 'eth1'])).toContain(second.ip);
    for (const ifname of ['eth0', 'eth1']) {
      expect(await callAgent(agent.runDir, 'POST', '/v1/check', { containerId: 'twoif', ifname })).toMatchObject({ ok: true });
    }
    for (const ifname of ['eth1', 'eth0']) await callAgent(agent.runDir, 'POST', '/v1/detach', { containerId: 'twoif', ifname });
  });

  it('a config over the relay/agent limit is code 6 from the relay, never 11; one under it reaches the agent', async () => {
    await unchanged(async () => {
      const over = JSON.stringify({ ...plugin.config('1.0.0'), args: { pad: 'x'.repeat(MAX_BODY) } });
      let r = await plugin.call({ command: 'ADD', containerId: 'big', netns: ctr.netnsPath, ifname: 'eth0', config: over });
      expect((JSON.parse(r.stdout) as { code: number }).code, r.stdout.slice(0, 300)).toBe(6);
      // Escaping grows control characters sixfold: under the limit on stdin, over it as a request.
      const escaped = JSON.stringify({ ...plugin.config('1.0.0'), args: { pad: '\u0001'.repeat(MAX_BODY / 5) } });
      r = await plugin.call({ command: 'ADD', containerId: 'big', netns: ctr.netnsPath, ifname: 'eth0', config: escaped });
      expect((JSON.parse(r.stdout) as { code: number }).code, r.stdout.slice(0, 300)).toBe(6);
      // Just under: the agent answers (no CNI_NETNS: its own code 4, not the relay's 11).
      const under = JSON.stringify({ ...plugin.config('1.0.0'), args: { pad: 'x'.repeat(MAX_BODY - 4096) } });
      r = await plugin.call({ command: 'ADD', containerId: 'big', ifname: 'eth0', config: under });
      expect((JSON.parse(r.stdout) as { code: number }).code, r.stdout.slice(0, 300)).toBe(4);
    });
  });

  it('the relay and the agent state the same body limit', () => {
    const c = readFileSync(repoPath('cni-plugin', 'relay', 'weft-cni.c'), 'utf8');
    const m = /#define MAX_BODY \((\d+) << (\d+)\)/.exec(c);
    expect(m).not.toBeNull();
    expect(Number(m![1]) << Number(m![2])).toBe(MAX_BODY);
  });

  it('etcd refusing connections: the warning says so in its message', async () => {
    const dead = await startAgent(host, { dir: join(lab.tmpDir, 'dead-etcd'), etcd: `http://${UNDERLAY_GATEWAY}:1`, args: ['--iface', 'eth0'] });
    try {
      await dead.proc.waitForOutput(/"msg":"waiting for the network config: cannot reach etcd \(connection refused\)"/, 20_000);
    } finally {
      await dead.proc.stop();
    }
  });
});

describe('the CNI relay when the agent dies in the middle of a request', () => {
  let dir: string;
  let server: NetServer | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-relay-'));
  });
  afterAll(async () => {
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A fake agent that reads the request and then does `answer` to the connection. */
  async function fakeAgent(answer: (c: Socket) => void): Promise<void> {
    server?.close();
    await rm(join(dir, 'weft.sock'), { force: true });
    server = createServer((c) => c.once('data', () => answer(c)));
    await new Promise<void>((resolve) => server!.listen(join(dir, 'weft.sock'), resolve));
  }

  function relay(): Promise<{ code: number; out: { code: number; msg: string } }> {
    return new Promise((resolve) => {
      const child = spawn(RELAY_BUILD, [], { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' } });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? -1, out: JSON.parse(stdout) as { code: number; msg: string } }));
      child.stdin.end(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'weft', runDir: dir, timeoutSeconds: 5 }));
    });
  }

  it.each([
    ['closes the connection without a word', (c: Socket) => c.destroy()],
    ['sends half a header', (c: Socket) => c.end('HTTP/1.1 200 OK\r\nX-Weft-Exit')],
    ['cuts its answer short of Content-Length', (c: Socket) => c.end('HTTP/1.1 200 OK\r\nX-Weft-Exit-Code: 0\r\nContent-Length: 100\r\n\r\n{"cniVer')],
  ])('an agent that %s gives code 11, never 999', async (_what, answer) => {
    await fakeAgent(answer);
    const r = await relay();
    expect(r.code).toBe(1);
    expect(r.out.code, r.out.msg).toBe(11);
    expect(r.out.msg).toMatch(/closed the connection/);
  });

  it('a whole answer still passes through (the fake is a fair one)', async () => {
    await fakeAgent((c) => c.end('HTTP/1.1 200 OK\r\nX-Weft-Exit-Code: 0\r\nContent-Length: 2\r\n\r\n{}'));
    const r = await relay();
    expect(r).toEqual({ code: 0, out: {} });
  });
});

describe('the API socket under umask 000', () => {
  it('is bound where no other user can reach it, then appears as 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-sock-'));
    const socketPath = join(dir, 'run', 'weft.sock');
    // What an agent killed between mkdtemp and rename leaves: cleared by the next start.
    await mkdir(join(dir, 'run', '.weft-Leftov'), { recursive: true });
    // At the moment of bind (the listen callback runs before anything else can), look at what others could reach.
    const seen: { socketMode: number; dirMode: number; path: string }[] = [];
    const original = NetServerClass.prototype.listen;
    const spy = function (this: NetServer, ...args: unknown[]): NetServer {
      const path = args[0];
      const cb = args[args.length - 1];
      if (typeof path === 'string' && typeof cb === 'function') {
        args[args.length - 1] = (...cbArgs: unknown[]) => {
          seen.push({ path, socketMode: statSync(path).mode & 0o777, dirMode: statSync(dirname(path)).mode & 0o777 });
          (cb as (...a: unknown[]) => void)(...cbArgs);
        };
      }
      return (original as (...a: unknown[]) => NetServer).apply(this, args);
    };
    const oldMask = process.umask(0);
    NetServerClass.prototype.listen = spy as typeof original;
    let server: Awaited<ReturnType<typeof startApiServer>> | undefined;
    try {
      server = await startApiServer(socketPath, { 'GET /v1/status': async () => ({}) }, pino({ level: 'silent' }));
    } finally {
      NetServerClass.prototype.listen = original;
      process.umask(oldMask);
    }
    try {
      expect(seen).toHaveLength(1);
      // Under umask 000 the fresh socket is 0777; what keeps others out is its private 0700 directory.
      expect(seen[0]!.dirMode & 0o077, JSON.stringify(seen)).toBe(0);
      expect(seen[0]!.path).not.toBe(socketPath);
      expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
      expect(await readdir(join(dir, 'run'))).toEqual(['weft.sock']);
    } finally {
      await new Promise((r) => server?.close(r));
    }
    // Closing removes the socket it put in place.
    await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('the API guard', () => {
  it('turns any exception in a handler (thrown at once, rejected, or unserialisable) into a 500 and a log line; the server keeps serving', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-guard-'));
    const socketPath = join(dir, 'weft.sock');
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const server = await startApiServer(
      socketPath,
      {
        'GET /v1/status': async () => ({ ok: true }),
        // Handlers are typed async, but a plain function can still throw before returning a promise.
        'GET /sync': (() => {
          throw new TypeError('sync boom');
        }) as never,
        'GET /async': async () => {
          throw new RangeError('async boom');
        },
        'GET /bigint': async () => ({ n: 1n }),
      },
      log,
    );
    try {
      for (const [path, says] of [['/sync', 'sync boom'], ['/async', 'async boom'], ['/bigint', 'BigInt']] as const) {
        const reply = await raw(socketPath, `GET ${path} HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n`);
        expect(reply, path).toMatch(/^HTTP\/1\.1 500 /);
        expect(reply).toContain('"code":"INTERNAL"');
        expect(lines.some((l) => l.includes('API call failed') && l.includes(says)), `${path} logged`).toBe(true);
      }
      expect(await raw(socketPath, 'GET /v1/status HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
