// The DNS server's native UDP fast path (native/src/dns_fastpath.c) on
// loopback: repeated queries are answered by the native thread (its hit
// counter moves) with the query's ID, RD bit and case; rotation continues
// across the cycle; a new generation is seen at once; clients outside the
// pushed networks, odd shapes and misses go to JS, which answers exactly as
// the node:dgram server does. Hostile datagrams (truncated headers,
// compression loops, qdcount 0/2, huge labels, OPT variants, random and
// mutated bytes) are sent to a native server and to a dgram server with the
// same zone, and must get the same bytes back (or nothing from both). The
// native table is bounded by entries and by bytes.
// Integration, not unit: it needs the built addon.

import * as packet from 'dns-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsServer } from '../../agent/dns/dns-server.js';
import { Forwarder } from '../../agent/dns/forwarder.js';
import { openFastPath } from '../../agent/dns/native-fastpath.js';
import { parseCidr } from '../../ipam/cidr.js';
import { seededRandom } from '../lab/seeded-random.js';
import { fakeZone } from '../lab/fake-zone.js';
import { udpQuery } from '../lab/udp-query.js';

type Reply = packet.DecodedPacket & { rcode: string; flag_tc: boolean };

function query(name: string, type = 'A', o: { id?: number; rd?: boolean; additionals?: packet.Answer[] } = {}): Buffer {
  return packet.encode({
    type: 'query',
    id: o.id ?? 7,
    flags: o.rd === false ? 0 : packet.RECURSION_DESIRED,
    questions: [{ name, type: type as packet.RecordType, class: 'IN' }],
    ...(o.additionals ? { additionals: o.additionals } : {}),
  });
}
const opt = (size: number, extra: Record<string, unknown> = {}): packet.Answer => ({ type: 'OPT', name: '.', udpPayloadSize: size, ...extra }) as packet.Answer;

describe('DNS native UDP fast path', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function server(o: { names?: Record<string, string[]>; native?: boolean; allowed?: (a: string) => boolean; nets?: string[] } = {}) {
    const names = o.names ?? { web: ['10.42.1.2', '10.42.2.2', '10.42.3.2'], db: ['10.42.1.5'], big: Array.from({ length: 25 }, (_, i) => `10.42.9.${i + 2}`) };
    let generation = 1;
    const forwarder = new Forwarder({ upstreams: () => [], timeoutMs: 100 });
    const s = new DnsServer({
      listen: [{ host: '127.0.0.1', port: 0 }],
      zone: fakeZone(names),
      forwarder,
      allowed: o.allowed ?? (() => true),
      log: pino({ level: 'silent' }),
      generation: () => generation,
      allowedNetworks: () => (o.nets ?? ['127.0.0.0/8']).map(parseCidr),
      nativeFastPath: o.native ?? true,
    });
    await s.start();
    cleanup.push(() => s.stop(), () => forwarder.close());
    return {
      s,
      port: s.bound[0]!.port,
      names,
      bump: () => {
        generation++;
        s.sync();
      },
    };
  }

  /** One query from a fresh socket; undefined when none comes. */
  function ask(port: number, q: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
    return udpQuery(port, q, timeoutMs);
  }

  const hits = (s: DnsServer): number => s.fastPathStats()?.["hits"] ?? 0;
  const dec = (b: Buffer | undefined): Reply => packet.decode(b!) as Reply;
  const addrs = (b: Buffer | undefined): unknown[] => (dec(b).answers ?? []).map((a) => (a as { data: unknown }).data);

  it('answers repeats natively with the query ID, RD bit and case, rotating, counted once', async () => {
    const { s, port } = await server();
    const first = await ask(port, query('web.weft.local', 'A', { id: 1 }));
    expect(hits(s)).toBe(0);
    expect(addrs(first)).toEqual(['10.42.1.2', '10.42.2.2', '10.42.3.2']);
    const seen = [];
    for (let i = 0; i < 4; i++) {
      const r = await ask(port, query('web.weft.local', 'A', { id: 100 + i, rd: i % 2 === 0 }));
      expect(dec(r).id).toBe(100 + i);
      expect(dec(r).flags! & packet.RECURSION_DESIRED).toBe(i % 2 === 0 ? packet.RECURSION_DESIRED : 0);
      seen.push((addrs(r) as string[])[0]);
    }
    expect(hits(s)).toBe(4);
    // The rotation continues where the JS answer left it.
    expect(seen).toEqual(['10.42.2.2', '10.42.3.2', '10.42.1.2', '10.42.2.2']);
    // Another case is its own entry: the question and the owner names come back as asked.
    for (let i = 0; i < 2; i++) {
      const r = dec(await ask(port, query('WeB.Weft.LOCAL')));
      expect(r.questions![0]!.name).toBe('WeB.Weft.LOCAL');
      expect(r.answers![0]!.name).toBe('WeB.Weft.LOCAL');
    }
    expect(hits(s)).toBe(5);
    // NXDOMAIN is served natively too, and counted as such.
    await ask(port, query('nope.weft.local'));
    expect(dec(await ask(port, query('nope.weft.local'))).rcode).toBe('NXDOMAIN');
    const c = s.counters;
    expect(c.queries).toBe(9);
    expect(c.answered).toBe(9);
    expect(c.nxdomain).toBe(2);
    expect(hits(s)).toBe(6);
  });

  it('a new generation empties the native table at once', async () => {
    const { s, port, names, bump } = await server();
    await ask(port, query('db.weft.local'));
    expect(addrs(await ask(port, query('db.weft.local')))).toEqual(['10.42.1.5']);
    names['db'] = ['10.42.7.7'];
    bump();
    expect(addrs(await ask(port, query('db.weft.local')))).toEqual(['10.42.7.7']);
    expect(addrs(await ask(port, query('db.weft.local')))).toEqual(['10.42.7.7']);
    expect(s.fastPathStats()?.["entries"]).toBe(1);
  });

  it('EDNS: kept per presence, cookies served, BADVERS and truncation left to JS', async () => {
    const { s, port } = await server();
    const cookie = opt(1232, { options: [{ code: 10, data: Buffer.alloc(8, 1) }] });
    await ask(port, query('db.weft.local', 'A', { additionals: [opt(4096)] }));
    const r = dec(await ask(port, query('db.weft.local', 'A', { additionals: [cookie] })));
    expect(hits(s)).toBe(1);
    expect(r.additionals?.some((a) => a.type === 'OPT')).toBe(true);
    // Without EDNS: another entry, no OPT in the reply.
    await ask(port, query('db.weft.local'));
    expect(dec(await ask(port, query('db.weft.local'))).additionals ?? []).toEqual([]);
    expect(hits(s)).toBe(2);
    // BADVERS is extended rcode 1 in the reply's OPT.
    const bad = dec(await ask(port, query('db.weft.local', 'A', { additionals: [opt(4096, { ednsVersion: 1 })] })));
    expect((bad.additionals?.find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined)?.extendedRcode).toBe(1);
    // 25 addresses (a cycle short enough to keep) fit 4096 but not 600: the large reply is kept, a small-payload client still gets TC from JS.
    await ask(port, query('big.weft.local', 'A', { additionals: [opt(4096)] }));
    expect(dec(await ask(port, query('big.weft.local', 'A', { additionals: [opt(4096)] }))).answers).toHaveLength(25);
    const small = dec(await ask(port, query('big.weft.local', 'A', { additionals: [opt(600)] })));
    expect(small.flag_tc).toBe(true);
    expect(hits(s)).toBe(3);
  });

  it('clients outside the pushed networks go to JS and get REFUSED', async () => {
    const { s, port } = await server({ allowed: () => false, nets: ['10.42.0.0/16'] });
    for (let i = 0; i < 3; i++) expect(dec(await ask(port, query('db.weft.local'))).rcode).toBe('REFUSED');
    expect(hits(s)).toBe(0);
    expect(s.counters.refused).toBe(3);
  });

  it('hostile datagrams get the same bytes as from the dgram server, and it still answers', async () => {
    const native = await server();
    const plain = await server({ native: false });
    const header = (qd: number, an = 0, ar = 0): Buffer => Buffer.from([0, 9, 1, 0, 0, qd, 0, an, 0, 0, 0, ar]);
    const q = query('web.weft.local');
    const name = Buffer.from('\x03web\x04weft\x05local\x00', 'latin1');
    const tail = Buffer.from([0, 1, 0, 1]);
    const rawOpt = (ver: number, rd: Buffer, cls = 4096): Buffer => Buffer.concat([Buffer.from([0, 0, 41, cls >> 8, cls & 255, 0, ver, 0, 0, rd.length >> 8, rd.length & 255]), rd]);
    const hostile: Buffer[] = [
      Buffer.alloc(0),
      ...Array.from({ length: 12 }, (_, i) => q.subarray(0, i)),
      Buffer.concat([header(1), Buffer.from([0xc0, 12]), tail]), // compression loop: the name points at itself
      Buffer.concat([header(1), Buffer.from([3, 97, 98, 99, 0xc0, 12]), tail]),
      Buffer.concat([header(0), name, tail]),
      Buffer.concat([header(2), name, tail, name, tail]),
      Buffer.concat([header(1), Buffer.from([64]), Buffer.alloc(64, 97), Buffer.from([0]), tail]), // a 64-byte label
      Buffer.concat([header(1), Buffer.concat(Array.from({ length: 50 }, () => Buffer.from([5, 97, 97, 97, 97, 97]))), Buffer.from([0]), tail]), // name > 255
      Buffer.concat([header(1), name, Buffer.from([0, 1, 0, 3])]), // class CH
      Buffer.concat([header(1), name]), // no type/class
      Buffer.concat([header(1), name, tail, Buffer.from([0])]), // trailing byte
      Buffer.concat([header(1, 1), name, tail]), // an answer count, no answer
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.alloc(0))]),
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(1, Buffer.alloc(0))]),
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.from([0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]))]),
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.from([0, 10, 0, 9, 1, 2]))]), // option runs past the end
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.from([0, 8, 0, 4, 0, 1, 24, 0]))]), // client subnet
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.alloc(0), 0)]), // payload 0
      Buffer.concat([header(1, 0, 2), name, tail, rawOpt(0, Buffer.alloc(0)), rawOpt(0, Buffer.alloc(0))]),
      Buffer.concat([header(1, 0, 1), name, tail, Buffer.from([1, 97]), rawOpt(0, Buffer.alloc(0)).subarray(1)]), // OPT not at root
      Buffer.concat([Buffer.from([0, 9, 0x81, 0]), header(1).subarray(4), name, tail]), // QR set
      Buffer.concat([Buffer.from([0, 9, 0x11, 0]), header(1).subarray(4), name, tail]), // opcode 2
      // Larger than any reply: the native thread must hand them to JS whole, as the dgram server reads them.
      Buffer.concat([header(1, 0, 1), name, tail, rawOpt(0, Buffer.concat([Buffer.from([0, 12, 0x13, 0x88]), Buffer.alloc(5000)]))]), // 5000 bytes of EDNS padding
      Buffer.concat([header(1), name, tail, Buffer.alloc(60_000, 0xab)]), // 60 000 trailing bytes
    ];
    const rand = seededRandom(8);
    const valid = [q, query('db.weft.local', 'AAAA'), query('nope.weft.local', 'A', { additionals: [opt(1232)] })];
    for (let i = 0; i < 100; i++) {
      const b = Buffer.from(valid[i % valid.length]!);
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      hostile.push(b.subarray(0, rand() < 0.2 ? Math.floor(rand() * b.length) : b.length));
    }
    for (let i = 0; i < 20; i++) hostile.push(Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))));
    // Twice each: the second time the native one may answer from its table, and must still agree.
    const all = [...hostile, ...hostile];
    for (let i = 0; i < all.length; i += 25) {
      const pairs = await Promise.all(all.slice(i, i + 25).map((h) => Promise.all([ask(native.port, h, 300), ask(plain.port, h, 300)])));
      for (const [a, b] of pairs) {
        // 'web' rotates and the two servers see its queries in different orders: compare its set.
        if (a && b && dec(a).answers?.length && (dec(a).questions?.[0]?.name ?? '').toLowerCase().startsWith('web')) {
          expect((addrs(a) as string[]).sort()).toEqual((addrs(b) as string[]).sort());
        } else {
          expect(a?.toString('hex')).toBe(b?.toString('hex'));
        }
      }
    }
    expect(hits(native.s)).toBeGreaterThan(0);
    expect(addrs(await ask(native.port, query('db.weft.local')))).toEqual(['10.42.1.5']);
  });

  it('the native table stays bounded: 20 000 entries or 32 MiB of replies, then it starts again', async () => {
    const fp = openFastPath('127.0.0.1', 0, () => undefined);
    cleanup.push(() => fp.close());
    const small = Buffer.alloc(40, 1);
    for (let i = 0; i < 20_000; i++) expect(fp.put(query(`n${i}.weft.local`), [small], false, 0)).toBe(true);
    expect(fp.stats().entries).toBe(20_000);
    // The 20 001st empties the table (as the JS cache does) and is kept.
    fp.put(query('one-more.weft.local'), [small], false, 0);
    expect(fp.stats().entries).toBe(1);
    // 4 KiB replies: 32 MiB holds 8192 of them.
    fp.clear();
    const big = Buffer.alloc(4096, 2);
    for (let i = 0; i < 8192; i++) fp.put(query(`b${i}.weft.local`), [big], false, 0);
    expect(fp.stats().entries).toBe(8192);
    fp.put(query('b-over.weft.local'), [big], false, 0);
    expect(fp.stats().entries).toBe(1);
    // A reply larger than any UDP answer weft sends is refused, and changes nothing.
    expect(fp.put(query('huge.weft.local'), [Buffer.alloc(4097)], false, 0)).toBe(false);
    expect(fp.stats().entries).toBe(1);
  });
});
