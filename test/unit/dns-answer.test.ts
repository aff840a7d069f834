// The DNS server's protocol rules on wire input: answers for cluster names,
// rotation, NXDOMAIN/NODATA, PTR, SRV, EDNS0, truncation, malformed input.
// Then the sockets on loopback: UDP, TCP, a fake upstream for forwarding,
// SERVFAIL when it is silent, REFUSED for clients outside the overlay, and
// random datagrams that must never stop it from answering.

import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import * as packet from 'dns-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerCache } from '../../agent/dns/answer-cache.js';
import { canonicalIp, decideQuery, reverseAddress, type Zone } from '../../agent/dns/dns-answer.js';
import { DnsServer } from '../../agent/dns/dns-server.js';
import { Forwarder, parseResolvConf, parseUpstream } from '../../agent/dns/forwarder.js';
import { fakeZone } from '../lab/fake-zone.js';
import { udpQuery } from '../lab/udp-query.js';

const zone = (): Zone =>
  fakeZone({ web: ['10.42.1.2', '10.42.2.2', '10.42.3.2'], db: ['10.42.1.5'], v6: ['fd00::5'], 'pod.ns': ['10.42.2.9'], big: Array.from({ length: 60 }, (_, i) => `10.42.9.${i + 2}`) });

function query(name: string, type: string, opts: { id?: number; edns?: number; ednsVersion?: number; flags?: number } = {}): Buffer {
  return packet.encode({
    type: 'query',
    id: opts.id ?? 77,
    flags: opts.flags ?? packet.RECURSION_DESIRED,
    questions: [{ name, type: type as packet.RecordType, class: 'IN' }],
    ...(opts.edns !== undefined ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, ...(opts.ednsVersion ? { ednsVersion: opts.ednsVersion } : {}) } as packet.Answer] } : {}),
  });
}

/** What dns-packet decodes but its types leave out. */
type Reply = packet.DecodedPacket & { rcode: string; flag_aa: boolean; flag_tc: boolean };
const decode = (b: Buffer): Reply => packet.decode(b) as Reply;

function answer(buf: Buffer, z = zone(), transport: 'udp' | 'tcp' = 'udp'): Reply {
  const d = decideQuery(buf, z, transport);
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${d.kind}`);
  return decode(d.bytes);
}

const datas = (p: packet.DecodedPacket): unknown[] => (p.answers ?? []).map((a) => (a as { data: unknown }).data);

describe('DNS answers', () => {
  it('answers A for NAME.weft.local with every address, rotating, case-insensitively, echoing the question', () => {
    const z = zone();
    const a1 = answer(query('WEB.weft.local', 'A'), z);
    expect(a1.rcode).toBe('NOERROR');
    expect(a1.flag_aa).toBe(true);
    expect(a1.id).toBe(77);
    expect(a1.questions![0]!.name).toBe('WEB.weft.local');
    expect(datas(a1)).toEqual(['10.42.1.2', '10.42.2.2', '10.42.3.2']);
    expect((a1.answers![0] as { ttl: number }).ttl).toBe(5);
    const a2 = answer(query('web.weft.local.', 'A'), z);
    expect(datas(a2)).toEqual(['10.42.2.2', '10.42.3.2', '10.42.1.2']);
    expect(answer(query('pod.ns.weft.local', 'A'), z).answers).toHaveLength(1);
  });

  it('NXDOMAIN for an unknown name, NODATA for a known name without that type, both with the SOA', () => {
    const nx = answer(query('nope.weft.local', 'A'));
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.authorities![0]!.type).toBe('SOA');
    const nodata = answer(query('db.weft.local', 'AAAA'));
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toHaveLength(0);
    expect(nodata.authorities![0]!.type).toBe('SOA');
    expect(datas(answer(query('v6.weft.local', 'AAAA')))).toEqual(['fd00::5']);
    expect(answer(query('weft.local', 'SOA')).answers![0]!.type).toBe('SOA');
    const between = answer(query('ns.weft.local', 'A'));
    expect(between.rcode).toBe('NOERROR');
    expect(between.answers).toHaveLength(0);
  });

  it('PTR for overlay addresses; NXDOMAIN for an overlay address without a name; other reverse names are forwarded', () => {
    const p = answer(query('2.1.42.10.in-addr.arpa', 'PTR'));
    expect(datas(p)).toEqual(['web.weft.local']);
    expect(answer(query('99.1.42.10.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    expect(decideQuery(query('1.0.18.198.in-addr.arpa', 'PTR'), zone(), 'udp').kind).toBe('forward');
    expect(reverseAddress('5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa')).toBe('fd00::5');
    expect(canonicalIp('FD00:0::05')).toBe('fd00::5');
  });

  it('SRV: one target per address, each resolving to its one address, given in the additional section', () => {
    const s = answer(query('_http._tcp.web.weft.local', 'SRV'));
    expect(s.answers).toHaveLength(3);
    const targets = (s.answers as { data: { target: string; port: number } }[]).map((a) => a.data.target);
    expect(targets).toContain('10-42-2-2.web.weft.local');
    expect(s.additionals!.filter((a) => a.type === 'A')).toHaveLength(3);
    expect(datas(answer(query('10-42-2-2.web.weft.local', 'A')))).toEqual(['10.42.2.2']);
    expect(answer(query('10-42-7-7.web.weft.local', 'A')).rcode).toBe('NXDOMAIN');
  });

  it('honours EDNS0: echoes an OPT, uses the client payload size; BADVERS for version 1', () => {
    const small = answer(query('big.weft.local', 'A'));
    expect(small.flag_tc).toBe(true);
    expect(small.answers).toHaveLength(0);
    const edns = answer(query('big.weft.local', 'A', { edns: 4096 }));
    expect(edns.flag_tc).toBe(false);
    expect(edns.answers).toHaveLength(60);
    expect(edns.additionals!.find((a) => a.type === 'OPT')).toBeDefined();
    const tcp = answer(query('big.weft.local', 'A'), zone(), 'tcp');
    expect(tcp.answers).toHaveLength(60);
    const bad = decideQuery(query('web.weft.local', 'A', { edns: 1232, ednsVersion: 1 }), zone(), 'udp');
    expect(bad.kind === 'reply' && bad.rcode).toBe('BADVERS');
    const opt = packet.decode((bad as { bytes: Buffer }).bytes).additionals!.find((a) => a.type === 'OPT') as { extendedRcode: number };
    expect(opt.extendedRcode).toBe(1);
  });

  it('FORMERR for undecodable queries and two questions; drops responses and runts; NOTIMP for other opcodes', () => {
    const q = query('web.weft.local', 'A', { id: 4242 });
    const cut = decideQuery(q.subarray(0, 20), zone(), 'udp');
    expect(cut.kind).toBe('reply');
    const formerr = decode((cut as { bytes: Buffer }).bytes);
    expect(formerr.rcode).toBe('FORMERR');
    expect(formerr.id).toBe(4242);
    const two = packet.encode({ type: 'query', id: 1, questions: [{ name: 'a.weft.local', type: 'A' }, { name: 'b.weft.local', type: 'A' }] });
    expect(answer(two).rcode).toBe('FORMERR');
    expect(decideQuery(Buffer.alloc(5), zone(), 'udp').kind).toBe('drop');
    const response = Buffer.from(q);
    response.writeUInt16BE(0x8000 | response.readUInt16BE(2), 2);
    expect(decideQuery(response, zone(), 'udp').kind).toBe('drop');
    const notify = Buffer.from(q);
    notify.writeUInt16BE((4 << 11) | notify.readUInt16BE(2), 2);
    expect(answer(notify).rcode).toBe('NOTIMP');
  });

  it('forwards names outside the domain', () => {
    expect(decideQuery(query('example.org', 'A'), zone(), 'udp')).toEqual({ kind: 'forward', id: 77, udpLimit: 512 });
  });

  it('never throws on random or mutated bytes', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const base = query('web.weft.local', 'A', { edns: 1232 });
    for (let i = 0; i < 5000; i++) {
      const b = i % 2 === 0 ? Buffer.from(Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256))) : Buffer.from(base);
      if (i % 2 === 1) for (let k = 0; k < 3; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      expect(() => decideQuery(b, zone(), 'udp')).not.toThrow();
    }
  });
});

describe('reply cache', () => {
  it('keeps the rotation, writes each query its own ID, and empties on a new generation', () => {
    let gen = 0;
    const names: Record<string, string[]> = { web: ['10.42.1.2', '10.42.2.2', '10.42.3.2'] };
    const z = fakeZone(names);
    const cache = new AnswerCache(() => gen);
    const ask = (id: number): Reply => {
      const q = query('web.weft.local', 'A', { id });
      const hit = cache.get(q);
      if (hit) return decode(hit.bytes);
      const d = cache.decideAndKeep(q, () => decideQuery(q, z, 'udp'), (x) => x.kind === 'reply');
      return decode((d as { bytes: Buffer }).bytes);
    };
    const firsts = [1, 2, 3, 4, 5, 6].map((id) => {
      const r = ask(id);
      expect(r.id).toBe(id);
      return datas(r)[0];
    });
    expect(firsts).toEqual(['10.42.1.2', '10.42.2.2', '10.42.3.2', '10.42.1.2', '10.42.2.2', '10.42.3.2']);
    names['web'] = ['10.42.9.9'];
    // Same generation: still the cached cycle (which is why the store bumps it on every change).
    expect(datas(ask(7))).toHaveLength(3);
    gen++;
    expect(datas(ask(9))).toEqual(['10.42.9.9']);
  });
});

describe('resolver config', () => {
  it('reads nameservers from resolv.conf and parses upstream flags', () => {
    expect(parseResolvConf('# x\nnameserver 192.0.2.53\nsearch a\nnameserver fe80::1%eth0\nnameserver bogus\n')).toEqual(['192.0.2.53', 'fe80::1']);
    expect(parseUpstream('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseUpstream('[::1]:54')).toEqual({ host: '::1', port: 54 });
    expect(parseUpstream('::1')).toEqual({ host: '::1', port: 53 });
    expect(() => parseUpstream('dns.example:53')).toThrow(/ADDRESS/);
    expect(() => parseUpstream('1.2.3.4:99999')).toThrow(/ADDRESS/);
  });
});

describe('DNS server sockets (loopback)', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function fakeUpstream(): Promise<{ port: number; silence: () => void }> {
    const s = createSocket('udp4');
    let silent = false;
    s.on('message', (msg, r) => {
      if (silent) return;
      const q = packet.decode(msg);
      s.send(packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.80' }] }), r.port, r.address);
    });
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    cleanup.push(() => void s.close());
    return { port: s.address().port, silence: () => (silent = true) };
  }

  async function server(upPort: number, allowed = (_a: string): boolean => true): Promise<DnsServer> {
    const forwarder = new Forwarder({ upstreams: () => [{ host: '127.0.0.1', port: upPort }], timeoutMs: 300 });
    const s = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], zone: zone(), forwarder, allowed, log: pino({ level: 'silent' }) });
    await s.start();
    cleanup.push(() => s.stop(), () => forwarder.close());
    return s;
  }

  async function ask(port: number, q: Buffer, timeoutMs = 2000): Promise<Reply | undefined> {
    const m = await udpQuery(port, q, timeoutMs);
    return m === undefined ? undefined : decode(m);
  }

  function askTcp(port: number, qs: Buffer[]): Promise<Reply[]> {
    return new Promise((resolve, reject) => {
      const c = connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const out: Reply[] = [];
      c.on('connect', () => c.write(Buffer.concat(qs.map((q) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q])))));
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (out.length === qs.length) {
          c.destroy();
          resolve(out);
        }
      });
      c.on('error', reject);
      c.on('close', () => reject(new Error(`connection closed after ${out.length} of ${qs.length} answers`)));
    });
  }

  it('answers over UDP and TCP (pipelined), forwards outside names, SERVFAIL when the upstream is silent', async () => {
    const up = await fakeUpstream();
    const s = await server(up.port);
    const port = s.bound[0]!.port;
    expect(datas((await ask(port, query('db.weft.local', 'A')))!)).toEqual(['10.42.1.5']);
    const [big, db] = await askTcp(port, [query('big.weft.local', 'A', { id: 1 }), query('db.weft.local', 'A', { id: 2 })]);
    expect(big!.answers).toHaveLength(60);
    expect(db!.id).toBe(2);
    const fwd = (await ask(port, query('example.org', 'A', { id: 999 })))!;
    expect(fwd.id).toBe(999);
    expect(datas(fwd)).toEqual(['192.0.2.80']);
    up.silence();
    expect((await ask(port, query('example.org', 'A')))!.rcode).toBe('SERVFAIL');
    expect(s.counters.servfail).toBe(1);
  });

  it('refuses clients outside the overlay, for cluster names and forwarding alike', async () => {
    const up = await fakeUpstream();
    const s = await server(up.port, () => false);
    const port = s.bound[0]!.port;
    expect((await ask(port, query('example.org', 'A')))!.rcode).toBe('REFUSED');
    expect((await ask(port, query('web.weft.local', 'A')))!.rcode).toBe('REFUSED');
  });

  it('TCP: garbage frames get FORMERR or nothing, a length bigger than what follows waits, too many connections are cut; it still answers', async () => {
    const up = await fakeUpstream();
    const s = await server(up.port);
    const port = s.bound[0]!.port;
    const raw = (bytes: Buffer, waitMs = 200): Promise<Buffer> =>
      new Promise((resolve) => {
        const c = connect(port, '127.0.0.1');
        let got = Buffer.alloc(0);
        c.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
        c.on('error', () => undefined);
        c.on('connect', () => c.write(bytes));
        setTimeout(() => {
          c.destroy();
          resolve(got);
        }, waitMs);
      });
    const junk = Buffer.from('00147a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a', 'hex');
    const reply = await raw(junk);
    expect(decode(reply.subarray(2)).rcode).toBe('FORMERR');
    expect((await raw(Buffer.from([0xff, 0xff, 1, 2, 3]))).length).toBe(0);
    const many = Array.from({ length: 80 }, () => connect(port, '127.0.0.1').on('error', () => undefined));
    await new Promise((r) => setTimeout(r, 200));
    const [ok] = await askTcp(port, [query('db.weft.local', 'A')]).catch(() => [undefined]);
    for (const c of many) c.destroy();
    expect(ok === undefined || datas(ok).length === 1).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(datas((await askTcp(port, [query('db.weft.local', 'A')]))[0]!)).toEqual(['10.42.1.5']);
  });

  it('keeps answering after 3000 random and mutated datagrams', async () => {
    const up = await fakeUpstream();
    const s = await server(up.port);
    const port = s.bound[0]!.port;
    const c = createSocket('udp4');
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const base = query('web.weft.local', 'A', { edns: 1232 });
    for (let i = 0; i < 3000; i++) {
      const b = i % 2 === 0 ? Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 100) }, () => Math.floor(rnd() * 256))) : Buffer.from(base);
      if (i % 2 === 1) for (let k = 0; k < 2; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      c.send(b, port, '127.0.0.1');
      // Paced, so the loopback socket's buffer holds them: the point is that each one is handled.
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 200));
    c.close();
    expect(datas((await ask(port, query('db.weft.local', 'A')))!)).toEqual(['10.42.1.5']);
    expect(s.counters.queries).toBeGreaterThan(1500);
    expect(s.counters.formerr).toBeGreaterThan(100);
  });
});
