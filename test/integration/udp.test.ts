// The udp backend through real agents in the lab, plain and sealed:
// containers on two hosts reach each other over weft-tun and the native
// forwarder; then the checks the issue lists (MTU, the payload never in clear
// on the underlay, wrong keys, replays, rotation, hostile datagrams, SIGKILL,
// leases coming and going) against the real kernel and real datagrams. Each
// mode gets one lab of three hosts (the third joins for the lease test).

import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRoot, createLab, pollUntil, UNDERLAY_GATEWAY, type Lab, type LabContainer, type LabHost, type Namespace } from '../lab/index.js';
import { startAgent, weft, type WeftAgent } from '../lab/weft.js';

const ETCD = `http://${UNDERLAY_GATEWAY}:2379`;
const PORT = 8285;
// 16 bytes that ping repeats through its payload; never produced by sealing by chance.
const PATTERN = 'c0ffee15deadbeef0badf00d7e57ab1e';

async function ping(c: LabContainer, ip: string, extra: string[] = []): Promise<{ ok: boolean; out: string; received: number }> {
  const r = await c.exec(['ping', '-n', '-W', '2', ...extra, ip], { allowFail: true, timeoutMs: 60_000 });
  const out = r.stdout + r.stderr;
  return { ok: r.code === 0, out, received: Number(out.match(/(\d+) received/)?.[1] ?? 0) };
}

const key32 = (): string => randomBytes(32).toString('base64');

/** Sends `count` datagrams (payloads base64, or random when `random`) from inside `ns`, bound to `from`. */
async function sendDatagrams(ns: Namespace, from: string, to: string, opts: { payloads?: string[]; random?: number }): Promise<void> {
  const script = `
    const s = require('dgram').createSocket('udp4');
    const crypto = require('crypto');
    const fixed = JSON.parse(process.argv[1]);
    const n = Number(process.argv[2]);
    s.bind(0, '${from}', async () => {
      const all = fixed.map((b) => Buffer.from(b, 'base64'));
      for (let i = 0; i < n; i++) all.push(crypto.randomBytes(crypto.randomInt(0, 1473)));
      for (let i = 0; i < all.length; i++) {
        await new Promise((r) => s.send(all[i], ${PORT}, '${to}', r));
        if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
      }
      s.close();
    });`;
  await ns.exec([process.execPath, '-e', script, JSON.stringify(opts.payloads ?? []), String(opts.random ?? 0)], { timeoutMs: 60_000 });
}

/** UDP payloads (to PORT) in a pcap file written by tcpdump on an Ethernet device. */
function udpPayloads(pcap: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 24;
  while (off + 16 <= pcap.length) {
    const caplen = pcap.readUInt32LE(off + 8);
    const frame = pcap.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ihl = (frame[14]! & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = frame.subarray(14 + ihl);
    if (udp.readUInt16BE(2) === PORT) out.push(Buffer.from(udp.subarray(8)));
  }
  return out;
}

describe.each([
  ['plain', false],
  ['sealed', true],
] as const)('udp backend (%s)', (mode, sealed) => {
  let lab: Lab;
  const agents: WeftAgent[] = [];
  const containers: LabContainer[] = [];
  const ips: string[] = [];
  const keyFiles: string[] = [];
  const prefix = `/udp-${mode}/network`;
  const mtu = 1500 - 28 - (sealed ? 33 : 0);
  const stats = async (i: number): Promise<Record<string, number>> => ((await agents[i]!.status())['dataplane'] ?? {}) as Record<string, number>;
  const drops = (s: Record<string, number>): number => Object.entries(s).reduce((n, [k, v]) => (k.startsWith('drop') ? n + v : n), 0);
  // What hosts 0 and 1 hold now (rotation changes it); a host that joins later gets the same.
  let ring: string[] = [];
  const setKeys = async (i: number, keys: string[]): Promise<void> => {
    if (i === 0) ring = keys;
    await writeFile(keyFiles[i]!, `${keys.join('\n')}\n`, { mode: 0o600 });
  };
  const startOn = async (i: number): Promise<WeftAgent> => {
    const a = await startAgent(lab.hosts[i]!, {
      dir: join(lab.tmpDir, `agent-${i}`),
      etcd: ETCD,
      args: ['--iface', 'eth0', '--etcd-prefix', prefix, '--resync-interval', '2'],
      env: { WEFT_KEY_FILE: keyFiles[i]! },
    });
    agents[i] = a;
    return a;
  };
  const key = key32();

  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 3 });
    const backend = sealed ? `{"Type":"udp","Port":${PORT},"Encrypt":true}` : `{"Type":"udp","Port":${PORT}}`;
    const set = await weft(lab.hosts[0]!, ['config', 'set', `{"Network":"10.43.0.0/16","Backend":${backend}}`, '--etcd-endpoints', ETCD, '--etcd-prefix', prefix]);
    expect(set.code, set.stderr).toBe(0);
    for (let i = 0; i < 3; i++) {
      keyFiles.push(join(lab.tmpDir, `key-${i}`));
      await setKeys(i, [key]);
    }
    await Promise.all([startOn(0), startOn(1)]);
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready with two leases')));
    for (const [i, a] of agents.entries()) {
      const c = await lab.hosts[i]!.addContainer(`c${i}`);
      containers.push(c);
      const r = await weft(a.host, ['attach', '--netns', c.netnsPath, '--run-dir', a.runDir]);
      expect(r.code, r.stderr).toBe(0);
      ips.push(r.stdout.trim().split('/')[0]!);
    }
  });
  afterAll(async () => lab?.destroy());

  it('containers on two hosts ping each other both ways', async () => {
    for (const [from, to] of [[0, 1], [1, 0]] as const) {
      const r = await ping(containers[from]!, ips[to]!, ['-c', '2']);
      expect(r.ok, `${from} -> ${to}: ${r.out} ${JSON.stringify([await stats(0), await stats(1)])}`).toBe(true);
    }
    const s = await stats(1);
    expect(s['rxPackets']).toBeGreaterThanOrEqual(2);
    expect(s['txPackets']).toBeGreaterThanOrEqual(2);
  });

  it(`the container MTU is underlay - 28${sealed ? ' - 33' : ''}; a DF ping at it passes, one byte more fails with "message too long"`, async () => {
    const link = JSON.parse((await containers[0]!.exec(['ip', '-j', 'link', 'show', 'eth0'])).stdout) as { mtu: number }[];
    expect(link[0]!.mtu).toBe(mtu);
    const full = await ping(containers[0]!, ips[1]!, ['-c', '1', '-M', 'do', '-s', String(mtu - 28)]);
    expect(full.ok, full.out).toBe(true);
    const over = await ping(containers[0]!, ips[1]!, ['-c', '1', '-M', 'do', '-s', String(mtu - 27)]);
    expect(over.ok).toBe(false);
    expect(over.out).toMatch(/message too long/i);
  });

  it('a 50 MB TCP transfer arrives intact', async () => {
    const file = join(lab.tmpDir, 'blob');
    const data = randomBytes(50 * 1024 * 1024);
    await writeFile(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    const server = containers[1]!.spawn([
      process.execPath,
      '-e',
      `const h=require('crypto').createHash('sha256');let n=0;
       const srv=require('net').createServer((s)=>{s.on('data',(d)=>{h.update(d);n+=d.length});s.on('end',()=>{console.log('got',n,h.digest('hex'));srv.close()})});
       srv.listen(5001,'${ips[1]}',()=>console.log('listening'));`,
    ]);
    await server.waitForOutput(/listening/);
    await containers[0]!.exec([process.execPath, '-e', `const s=require('net').connect(5001,'${ips[1]}',()=>require('fs').createReadStream('${file}').pipe(s));`], { timeoutMs: 90_000 });
    const m = await server.waitForOutput(/got (\d+) ([0-9a-f]{64})/, 60_000);
    expect(Number(m[1])).toBe(data.length);
    expect(m[2]).toBe(want);
  }, 120_000);

  it(`a ping's payload pattern captured on the underlay is ${sealed ? 'absent (sealed)' : 'present (plain: the capture works)'}`, async () => {
    const file = join(lab.tmpDir, `cap-${mode}.pcap`);
    const dump = lab.hosts[0]!.spawn(['tcpdump', '-n', '-U', '-i', 'eth0', '-c', '4', '-w', file, 'udp', 'port', String(PORT)]);
    await dump.waitForOutput(/listening on/);
    const r = await ping(containers[0]!, ips[1]!, ['-c', '2', '-i', '0.2', '-p', PATTERN]);
    expect(r.ok, r.out).toBe(true);
    await dump.exited;
    const pcap = await readFile(file);
    const payloads = udpPayloads(pcap);
    expect(payloads.length).toBe(4);
    expect(pcap.includes(Buffer.from(PATTERN, 'hex'))).toBe(!sealed);
    // Sealed datagrams carry the type byte, not an IPv4 header.
    expect(payloads.every((p) => p[0] === (sealed ? 0xa1 : 0x45))).toBe(true);
  });

  it('10 000 random datagrams to the port (from an unknown host and from a peer) change nothing and crash nothing', async () => {
    const routes = async (h: LabHost) => (await h.exec(['ip', '-j', 'route', 'show'])).stdout;
    const routesBefore = await routes(lab.hosts[1]!);
    const before = await stats(1);
    await Promise.all([
      sendDatagrams(lab.underlay, UNDERLAY_GATEWAY, lab.hosts[1]!.ip, { random: 5000 }),
      sendDatagrams(lab.hosts[0]!, lab.hosts[0]!.ip, lab.hosts[1]!.ip, { random: 5000 }),
    ]);
    const after = await pollUntil(() => stats(1), (s) => drops(s) - drops(before) >= 9000, 10_000);
    expect(agents[1]!.proc.running).toBe(true);
    // Nothing reached the TUN device, and the socket lost only what its buffer could not hold.
    expect(after['rxPackets']).toBe(before['rxPackets']);
    expect(after['dropUnknownPeer']! - before['dropUnknownPeer']!).toBeGreaterThanOrEqual(4500);
    expect(await routes(lab.hosts[1]!)).toBe(routesBefore);
    const r = await ping(containers[0]!, ips[1]!, ['-c', '2']);
    expect(r.ok, r.out).toBe(true);
  });

  it('SIGKILL and restart of an agent restores traffic (the gap is printed)', async () => {
    const count = 200; // 10 s at 0.05 s
    const pinger = ping(containers[0]!, ips[1]!, ['-D', '-i', '0.05', '-c', String(count), '-W', '1']);
    await new Promise((r) => setTimeout(r, 1000));
    const killedAt = Date.now() / 1000;
    agents[0]!.proc.kill('SIGKILL');
    await agents[0]!.proc.exited;
    await agents[0]!.start();
    await agents[0]!.ready();
    const r = await pinger;
    const replies = [...r.out.matchAll(/^\[(\d+\.\d+)\].*icmp_seq=(\d+)/gm)].map((m) => Number(m[1]));
    const after = replies.filter((t) => t > killedAt);
    expect(after.length, r.out).toBeGreaterThan(0);
    let gap = 0;
    for (let i = 1; i < replies.length; i++) gap = Math.max(gap, replies[i]! - replies[i - 1]!);
    console.log(`udp ${mode}: SIGKILL + restart: longest gap between ping replies ${(gap * 1000).toFixed(0)} ms; ${replies.length}/${count} replies`);
  }, 60_000);

  // Plain datagrams are bare IP packets, so a test can forge them without keys.
  if (!sealed) {
    describe('inner checks', () => {
      it("a peer's packet with a source outside its subnet, or a destination outside ours, is dropped and counted", async () => {
        const subnetA = (await agents[0]!.status()).subnet!;
        const base = subnetA.split('/')[0]!.split('.').map(Number);
        const packet = (src: number[], dst: string): string => {
          const b = Buffer.alloc(28);
          b[0] = 0x45;
          b.writeUInt16BE(28, 2);
          b[8] = 64;
          b[9] = 1; // ICMP
          Buffer.from(src).copy(b, 12);
          Buffer.from(dst.split('.').map(Number)).copy(b, 16);
          b[20] = 8; // echo request
          return b.toString('base64');
        };
        const before = await stats(1);
        const inA = [base[0]!, base[1]!, base[2]!, 9];
        await sendDatagrams(lab.hosts[0]!, lab.hosts[0]!.ip, lab.hosts[1]!.ip, {
          payloads: [packet([10, 43, 250, 9], ips[1]!), packet(inA, UNDERLAY_GATEWAY), packet(inA, '10.43.250.1')],
        });
        const after = await pollUntil(() => stats(1), (x) => x['dropBadSource']! + x['dropBadDestination']! >= before['dropBadSource']! + before['dropBadDestination']! + 3, 5000);
        expect(after['dropBadSource']).toBe(before['dropBadSource']! + 1);
        expect(after['dropBadDestination']).toBe(before['dropBadDestination']! + 2);
        expect(after['rxPackets']).toBe(before['rxPackets']);
      });
    });
  }

  // Keys exist only in sealed mode: defined (not skipped) for it alone.
  if (sealed) {
    describe('keys', () => {
      it('a captured datagram sent again is dropped as a replay', async () => {
        const file = join(lab.tmpDir, 'replay.pcap');
        const dump = lab.hosts[1]!.spawn(['tcpdump', '-n', '-U', '-i', 'eth0', '-c', '1', '-w', file, 'udp', 'dst', 'port', String(PORT), 'and', 'src', 'host', lab.hosts[0]!.ip]);
        await dump.waitForOutput(/listening on/);
        expect((await ping(containers[0]!, ips[1]!, ['-c', '3', '-i', '0.3'])).ok).toBe(true);
        await dump.exited;
        const [captured] = udpPayloads(await readFile(file));
        expect(captured).toBeDefined();
        const before = await stats(1);
        await sendDatagrams(lab.hosts[0]!, lab.hosts[0]!.ip, lab.hosts[1]!.ip, { payloads: [captured!.toString('base64')] });
        const after = await pollUntil(() => stats(1), (s) => s['dropReplay']! > before['dropReplay']!, 5000);
        expect(after['dropReplay']).toBe(before['dropReplay']! + 1);
        expect(after['rxPackets']).toBe(before['rxPackets']);
        // One bit flipped: the tag no longer verifies.
        const forged = Buffer.from(captured!);
        forged[forged.length - 20]! ^= 1;
        forged.writeUInt32BE(forged.readUInt32BE(13) + 100000, 13); // a fresh counter, so it is not taken for a replay
        await sendDatagrams(lab.hosts[0]!, lab.hosts[0]!.ip, lab.hosts[1]!.ip, { payloads: [forged.toString('base64')] });
        const forgedAfter = await pollUntil(() => stats(1), (s) => s['dropAuth']! > before['dropAuth']!, 5000);
        expect(forgedAfter['dropAuth']).toBe(before['dropAuth']! + 1);
      });

      it('two hosts with different keys pass nothing while the drop counter rises; the same key again heals', async () => {
        await setKeys(1, [key32()]);
        await agents[1]!.proc.waitForOutput(/udp keys changed/, 5000);
        const before = await stats(1);
        const r = await ping(containers[0]!, ips[1]!, ['-c', '3', '-i', '0.2', '-W', '1']);
        expect(r.received).toBe(0);
        const after = await stats(1);
        expect(drops(after)).toBeGreaterThanOrEqual(drops(before) + 3);
        expect(after['rxPackets']).toBe(before['rxPackets']);
        await setKeys(1, [key]);
        await pollUntil(() => ping(containers[0]!, ips[1]!, ['-c', '1', '-W', '1']), (p) => p.ok, 10_000);
      });

      it('key rotation in three steps (add, seal with the new, drop the old) loses no packet', async () => {
        const next = key32();
        const count = 160; // 8 s at 0.05 s
        const pinger = ping(containers[0]!, ips[1]!, ['-i', '0.05', '-c', String(count), '-W', '1']);
        const changes = (i: number): number => (agents[i]!.proc.stderr.match(/udp keys changed/g) ?? []).length;
        const step = async (keysA: string[], keysB: string[]): Promise<void> => {
          const seen = [changes(0), changes(1)];
          await setKeys(0, keysA);
          await pollUntil(async () => changes(0), (n) => n > seen[0]!, 5000, 50);
          await setKeys(1, keysB);
          await pollUntil(async () => changes(1), (n) => n > seen[1]!, 5000, 50);
        };
        await step([key, next], [key, next]); // 1: everyone opens with the new key
        await step([next, key], [next, key]); // 2: everyone seals with it (A first: B already opens it)
        await step([next], [next]); // 3: the old key goes
        const r = await pinger;
        expect(r.out).toMatch(new RegExp(`${count} packets transmitted, ${count} received`));
      }, 60_000);
    });
  }

  it('a lease added or removed updates forwarding without a restart', async () => {
    await setKeys(2, ring);
    const c = await startOn(2);
    await agents[0]!.waitFor((s) => s.leases.length === 3, 'the third lease');
    const cont = await lab.hosts[2]!.addContainer('c2');
    const att = await weft(c.host, ['attach', '--netns', cont.netnsPath, '--run-dir', c.runDir]);
    expect(att.code, att.stderr).toBe(0);
    const ipC = att.stdout.trim().split('/')[0]!;
    const reach = await pollUntil(() => ping(containers[0]!, ipC, ['-c', '1', '-W', '1']), (p) => p.ok, 10_000);
    expect(reach.ok, reach.out).toBe(true);
    await c.proc.stop();
    const leave = await weft(c.host, ['leave', '--iface', 'eth0', '--etcd-endpoints', ETCD, '--etcd-prefix', prefix]);
    expect(leave.code, leave.stderr).toBe(0);
    await agents[0]!.waitFor((s) => s.leases.length === 2, 'the lease to go');
    // The data plane keeps a vanished lease for --lease-grace (its owner may re-create it), then drops it.
    const before = await stats(0);
    const after = await pollUntil(
      async () => (await ping(containers[0]!, ipC, ['-c', '1', '-W', '1']), await stats(0)),
      (x) => x['dropNoRoute']! > before['dropNoRoute']!,
      20_000,
      200,
    );
    expect(after['dropNoRoute']).toBeGreaterThan(before['dropNoRoute']!);
    const gone = await ping(containers[0]!, ipC, ['-c', '2', '-i', '0.2', '-W', '1']);
    expect(gone.received).toBe(0);
  }, 60_000);
});

describe('switching Backend.Type with a restart of the agents (README: switching)', () => {
  let lab: Lab;
  const prefix = '/udp-switch/network';
  beforeAll(async () => {
    assertRoot();
    lab = await createLab({ hosts: 2 });
  });
  afterAll(async () => lab?.destroy());

  it('vxlan -> udp -> vxlan: leases are rewritten, the other backend\'s routes go, containers keep talking', async () => {
    const config = async (type: string) => {
      const r = await weft(lab.hosts[0]!, ['config', 'set', `{"Network":"10.44.0.0/16","Backend":{"Type":"${type}"}}`, '--etcd-endpoints', ETCD, '--etcd-prefix', prefix]);
      expect(r.code, r.stderr).toBe(0);
    };
    const start = () =>
      Promise.all(lab.hosts.map((h, i) => startAgent(h, { dir: join(lab.tmpDir, `s${i}`), etcd: ETCD, args: ['--iface', 'eth0', '--etcd-prefix', prefix] })));
    const weftRoutes = async () => (await lab.hosts[0]!.exec(['ip', 'route', 'show', 'proto', '87'])).stdout.trim();
    await config('vxlan');
    let agents = await start();
    await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2, 'ready')));
    const cs = [await lab.hosts[0]!.addContainer('s0'), await lab.hosts[1]!.addContainer('s1')];
    const ips: string[] = [];
    for (const [i, a] of agents.entries()) {
      const r = await weft(a.host, ['attach', '--netns', cs[i]!.netnsPath, '--run-dir', a.runDir]);
      expect(r.code, r.stderr).toBe(0);
      ips.push(r.stdout.trim().split('/')[0]!);
    }
    const both = async () => {
      for (const [from, to] of [[0, 1], [1, 0]] as const) {
        const r = await pollUntil(() => ping(cs[from]!, ips[to]!, ['-c', '1', '-W', '1']), (p) => p.ok, 10_000);
        expect(r.ok, r.out).toBe(true);
      }
    };
    await both();
    expect(await weftRoutes()).toMatch(/dev weft\.1/);

    for (const [type, mine, other] of [
      ['udp', /dev weft-tun/, /weft\.1/],
      ['vxlan', /dev weft\.1/, /weft-tun/],
    ] as const) {
      await config(type);
      await Promise.all(agents.map((a) => a.proc.stop()));
      agents = await start();
      await Promise.all(agents.map((a) => a.waitFor((s) => s.ready && s.leases.length === 2 && s.leases.every((l) => l.backendType === type), `ready on ${type}`)));
      await both();
      const routes = await pollUntil(weftRoutes, (r) => !other.test(r), 10_000);
      expect(routes).toMatch(mine);
      expect(routes).not.toMatch(other);
    }
    await Promise.all(agents.map((a) => a.proc.stop()));
  }, 120_000);
});
