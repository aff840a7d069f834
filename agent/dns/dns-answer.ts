// What the DNS server says to one query, as a pure function of the query's
// bytes and the zone: a reply, "forward it upstream", or "drop it". All the
// protocol rules live here so unit tests drive them with wire input:
//
// - Fewer than 12 bytes, or a response (QR set): dropped (never answer an
//   answer: that is how reflection loops start).
// - Undecodable, more than one question, or two OPT records: FORMERR.
//   Opcodes other than QUERY: NOTIMP. EDNS versions above 0: BADVERS.
// - NAME.<domain> (A, AAAA, ANY, SRV): authoritative answers from the record
//   store, every address of the name in rotating order; NXDOMAIN (with the SOA,
//   for negative caching) when the name has no record, NODATA (NOERROR, SOA)
//   when it has records of another type only, or none of its own but names
//   below it ("ns" of "pod.ns", RFC 8020).
// - SRV shape: NAME.<domain>, or _service._proto.NAME.<domain> (the service and
//   protocol labels are not looked at), answers one SRV per address: priority
//   0, weight 10, port 0 (weft does not know container ports), target
//   a-b-c-d.NAME.<domain>, which itself resolves to that one address; the
//   targets' A/AAAA records go in the additional section.
// - PTR for addresses of the overlay network: the names holding that address;
//   NXDOMAIN for an overlay address without one (never forwarded: these are
//   private addresses upstream resolvers know nothing of).
// - Everything else: forwarded (the server decides whether the client may).
// - Over UDP an answer longer than the client's limit (512, or its EDNS
//   payload size up to 4096) is sent empty with TC set, so it asks over TCP.

import { isIP } from 'node:net';
import * as packet from 'dns-packet';

export interface Zone {
  /** The cluster domain, lower case, without the trailing dot ("weft.local"). */
  readonly domain: string;
  readonly ttl: number;
  lookup(name: string): readonly string[] | undefined;
  reverse(address: string): readonly string[] | undefined;
  /** Whether a name has no records but names below it do ("ns" of "pod.ns"): NODATA, not NXDOMAIN. */
  isBetween?(name: string): boolean;
  /** Whether an address belongs to the overlay network (its PTR is ours to answer). */
  inOverlay(address: string): boolean;
  /** Rotation offset for a name's next answer (round robin). */
  rotation(name: string): number;
}

export type Transport = 'udp' | 'tcp';

export type Decision =
  | { readonly kind: 'reply'; readonly bytes: Buffer; readonly rcode: string }
  | { readonly kind: 'forward'; readonly id: number; readonly udpLimit: number }
  | { readonly kind: 'drop' };

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODE | 'BADVERS';
const OPCODE_QUERY = 0;
const QR = 1 << 15;
const AA = 1 << 10;
const TC = 1 << 9;
const RD = 1 << 8;
const RA = 1 << 7;
/** What we tell EDNS clients we accept over UDP (the DNS flag day's figure: no fragmentation). */
export const OUR_UDP_PAYLOAD = 1232;
const MAX_UDP = 4096;

type Answer = packet.Answer;

function flagsOf(queryFlags: number, rcode: Rcode, authoritative: boolean, truncated = false): number {
  const opcode = (queryFlags >> 11) & 0xf;
  return QR | (opcode << 11) | (authoritative ? AA : 0) | (truncated ? TC : 0) | (queryFlags & RD) | RA | (rcode === 'BADVERS' ? 0 : RCODE[rcode]);
}

/** A header-only reply for a query we could not decode: the id and opcode we could read, no sections. */
export function headerOnlyReply(query: Buffer, rcode: Rcode): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(flagsOf(query.readUInt16BE(2), rcode, false), 2);
  return out;
}

function reply(bytes: Buffer, rcode: string): Decision {
  return { kind: 'reply', bytes, rcode };
}

/** "10-42-1-2" → "10.42.1.2" when the label is a dashed IPv4 address. */
function dashedAddress(label: string): string | undefined {
  const ip = label.replace(/-/g, '.');
  return isIP(ip) === 4 && /^\d+-\d+-\d+-\d+$/.test(label) ? ip : undefined;
}

export function dashed(address: string): string {
  return isIP(address) === 4 ? address.replace(/\./g, '-') : address.replace(/:/g, '-');
}

/** The address a reverse name stands for, or undefined ("2.1.42.10.in-addr.arpa" → "10.42.1.2"). */
export function reverseAddress(qname: string): string | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(qname);
  if (v4) {
    const ip = `${v4[4]}.${v4[3]}.${v4[2]}.${v4[1]}`;
    return isIP(ip) === 4 ? ip : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(qname);
  if (v6) {
    const hex = v6[1]!.split('.').filter((x) => x !== '').reverse().join('');
    const groups = hex.match(/.{4}/g)!.join(':');
    return canonicalIp(groups);
  }
  return undefined;
}

/** The canonical text of an address (IPv6 compressed, lower case), undefined when not one. */
export function canonicalIp(s: string): string | undefined {
  const family = isIP(s);
  if (family === 4) return s.split('.').map((o) => String(Number(o))).join('.');
  if (family === 6) {
    try {
      return new URL(`http://[${s}]/`).hostname.slice(1, -1);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function rotated<T>(xs: readonly T[], by: number): T[] {
  if (xs.length < 2) return [...xs];
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

interface Parsed {
  readonly q: packet.DecodedPacket;
  readonly question: packet.Question;
  readonly opt?: Extract<Answer, { type: 'OPT' }>;
}

export function decideQuery(buf: Buffer, zone: Zone, transport: Transport): Decision {
  if (buf.length < 12) return { kind: 'drop' };
  const rawFlags = buf.readUInt16BE(2);
  if ((rawFlags & QR) !== 0) return { kind: 'drop' };
  // One question, and no more records than the bytes could hold (each takes at least 11):
  // checked before decoding, so a header claiming 65535 records costs nothing.
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  if (buf.readUInt16BE(4) !== 1 || 12 + 5 + records * 11 > buf.length) return reply(headerOnlyReply(buf, 'FORMERR'), 'FORMERR');
  let q: packet.DecodedPacket;
  try {
    q = packet.decode(buf);
  } catch {
    return reply(headerOnlyReply(buf, 'FORMERR'), 'FORMERR');
  }
  if (((rawFlags >> 11) & 0xf) !== OPCODE_QUERY) return reply(headerOnlyReply(buf, 'NOTIMP'), 'NOTIMP');
  const opts = (q.additionals ?? []).filter((a): a is Extract<Answer, { type: 'OPT' }> => a.type === 'OPT');
  if (q.questions?.length !== 1 || opts.length > 1) return reply(headerOnlyReply(buf, 'FORMERR'), 'FORMERR');
  const parsed: Parsed = { q, question: q.questions[0]!, ...(opts[0] ? { opt: opts[0] } : {}) };
  const udpLimit = transport === 'tcp' ? 65535 : parsed.opt ? Math.max(512, Math.min(parsed.opt.udpPayloadSize ?? 512, MAX_UDP)) : 512;
  if (parsed.opt && (parsed.opt.ednsVersion ?? 0) > 0) return reply(encode(parsed, 'BADVERS', [], [], [], false), 'BADVERS');

  const qname = parsed.question.name.toLowerCase().replace(/\.$/, '');
  const qclass = parsed.question.class ?? 'IN';
  // A string: dns-packet's RecordType omits ANY, which it does decode.
  const qtype: string = parsed.question.type;
  const domain = zone.domain;
  if (qname === domain || qname.endsWith(`.${domain}`)) {
    if (qclass !== 'IN' && qclass !== 'ANY') return reply(encode(parsed, 'REFUSED', [], [], [], false), 'REFUSED');
    return limit(parsed, answerZone(parsed, qname === domain ? '' : qname.slice(0, -(domain.length + 1)), zone), udpLimit);
  }
  const rev = qname.endsWith('.arpa') ? reverseAddress(qname) : undefined;
  if (rev !== undefined && zone.inOverlay(rev) && (qtype === 'PTR' || qtype === 'ANY')) {
    const names = zone.reverse(rev);
    if (names === undefined) return reply(encode(parsed, 'NXDOMAIN', [], [], [], true), 'NXDOMAIN');
    const answers: Answer[] = names.map((n) => ({ type: 'PTR', name: parsed.question.name, ttl: zone.ttl, class: 'IN', data: `${n}.${domain}` }));
    return limit(parsed, { rcode: 'NOERROR', answers, authorities: [], additionals: [] }, udpLimit);
  }
  if (rev !== undefined && zone.inOverlay(rev)) {
    const names = zone.reverse(rev);
    return reply(encode(parsed, names === undefined ? 'NXDOMAIN' : 'NOERROR', [], [], [], true), names === undefined ? 'NXDOMAIN' : 'NODATA');
  }
  return { kind: 'forward', id: q.id ?? 0, udpLimit };
}

interface ZoneAnswer {
  readonly rcode: Rcode;
  readonly answers: Answer[];
  readonly authorities: Answer[];
  readonly additionals: Answer[];
}

function soa(zone: Zone): Answer {
  return {
    type: 'SOA',
    name: zone.domain,
    ttl: zone.ttl,
    class: 'IN',
    data: { mname: `ns.${zone.domain}`, rname: `hostmaster.${zone.domain}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: zone.ttl },
  };
}

function addressAnswers(owner: string, addrs: readonly string[], type: string, zone: Zone): Answer[] {
  const out: Answer[] = [];
  for (const a of addrs) {
    const fam = isIP(a);
    if ((type === 'A' || type === 'ANY') && fam === 4) out.push({ type: 'A', name: owner, ttl: zone.ttl, class: 'IN', data: a });
    if ((type === 'AAAA' || type === 'ANY') && fam === 6) out.push({ type: 'AAAA', name: owner, ttl: zone.ttl, class: 'IN', data: a });
  }
  return out;
}

function answerZone(p: Parsed, rel: string, zone: Zone): ZoneAnswer {
  const type: string = p.question.type;
  const owner = p.question.name;
  const negative = (rcode: Rcode): ZoneAnswer => ({ rcode, answers: [], authorities: [soa(zone)], additionals: [] });
  if (rel === '') {
    if (type === 'SOA' || type === 'ANY') return { rcode: 'NOERROR', answers: [{ ...soa(zone), name: owner }], authorities: [], additionals: [] };
    return negative('NOERROR');
  }
  // SRV may come as _service._proto.NAME: those labels only say what the client wants.
  const srvName = type === 'SRV' ? rel.replace(/^_[^.]*\._[^.]*\./, '') : rel;
  let addrs = zone.lookup(srvName);
  if (addrs === undefined) {
    // a-b-c-d.NAME: one instance of NAME (an SRV target).
    const dot = rel.indexOf('.');
    const one = dot > 0 ? dashedAddress(rel.slice(0, dot)) : undefined;
    const of = one !== undefined ? zone.lookup(rel.slice(dot + 1)) : undefined;
    if (one === undefined || of === undefined || !of.includes(one)) return negative(zone.isBetween?.(srvName) ? 'NOERROR' : 'NXDOMAIN');
    addrs = [one];
  }
  const order = rotated(addrs, zone.rotation(srvName));
  if (type === 'SRV') {
    const answers: Answer[] = [];
    const additionals: Answer[] = [];
    for (const a of order) {
      const target = `${dashed(a)}.${srvName}.${zone.domain}`;
      answers.push({ type: 'SRV', name: owner, ttl: zone.ttl, class: 'IN', data: { priority: 0, weight: 10, port: 0, target } });
      additionals.push(...addressAnswers(target, [a], 'ANY', zone));
    }
    return { rcode: 'NOERROR', answers, authorities: [], additionals };
  }
  const answers = addressAnswers(owner, order, type, zone);
  return answers.length > 0 ? { rcode: 'NOERROR', answers, authorities: [], additionals: [] } : negative('NOERROR');
}

function encode(p: Parsed, rcode: Rcode, answers: Answer[], authorities: Answer[], additionals: Answer[], authoritative: boolean, truncated = false): Buffer {
  const opt: Answer[] = p.opt ? [{ type: 'OPT', name: '.', udpPayloadSize: OUR_UDP_PAYLOAD, extendedRcode: rcode === 'BADVERS' ? 1 : 0, ednsVersion: 0, flags: 0 } as Answer] : [];
  return packet.encode({
    id: p.q.id ?? 0,
    type: 'response',
    flags: flagsOf(p.q.flags ?? 0, rcode, authoritative, truncated),
    questions: [p.question],
    answers,
    authorities,
    additionals: [...additionals, ...opt],
  });
}

/** The reply, or the same reply empty with TC set when it does not fit the client's UDP limit. */
function limit(p: Parsed, a: ZoneAnswer, udpLimit: number): Decision {
  const full = encode(p, a.rcode, a.answers, a.authorities, a.additionals, true);
  const rcode = a.rcode === 'NOERROR' && a.answers.length === 0 ? 'NODATA' : a.rcode;
  if (full.length <= udpLimit) return reply(full, rcode);
  return reply(encode(p, a.rcode, [], [], [], true, true), 'TRUNCATED');
}

/** SERVFAIL for a query we decided to forward but could not (upstreams down or none). */
export function servfail(query: Buffer): Buffer {
  try {
    const q = packet.decode(query);
    const opts = (q.additionals ?? []).filter((a) => a.type === 'OPT');
    return encode({ q, question: q.questions![0]!, ...(opts[0] ? { opt: opts[0] as Extract<Answer, { type: 'OPT' }> } : {}) }, 'SERVFAIL', [], [], [], false);
  } catch {
    return headerOnlyReply(query, 'SERVFAIL');
  }
}

/** REFUSED, as small as the query, for clients outside the overlay. */
export function refused(query: Buffer): Buffer {
  return headerOnlyReply(query, 'REFUSED');
}
