// The gossip wire: codec round trips, sealing with rotation (first key seals,
// all open), and hostile bytes: random, truncated and bit-flipped input is
// rejected with GossipDecodeError or an open failure, never anything else.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodePacket, decodeState, encodePacket, encodeState, GossipDecodeError, msgSize, packetOverhead } from '../../agent/gossip/codec.js';
import type { Packet, PushPullState } from '../../agent/gossip/messages.js';
import { open, seal, SEAL_OVERHEAD } from '../../agent/gossip/seal.js';
import { gossipKeys, seedsFromLeases } from '../../agent/components/gossip.js';
import { gossipStatusLine, peersTable } from '../../agent/commands/peers.js';
import { generateKey, parseKeyFile } from '../../ipam/keys.js';
import { seededRandom } from '../lab/seeded-random.js';
import type { Lease } from '../../ipam/types.js';

const packet: Packet = {
  from: '198.18.0.1',
  msgs: [
    { t: 'ping', seq: 4294967295, target: '198.18.0.2', srcAddr: '198.18.0.1', srcPort: 7946 },
    { t: 'ping-req', seq: 7, target: 'fd00::2', targetAddr: 'fd00::2', targetPort: 1, srcAddr: '198.18.0.1', srcPort: 65535 },
    { t: 'ack', seq: 0 },
    { t: 'alive', id: '198.18.0.3', addr: '198.18.0.3', port: 7946, inc: 1_700_000_000 },
    { t: 'suspect', id: '198.18.0.3', inc: 5, from: '198.18.0.1' },
    { t: 'dead', id: '198.18.0.3', inc: 5, from: '198.18.0.3' },
    { t: 'user', origin: '198.18.0.1', seq: 9, data: new Uint8Array([1, 2, 3]) },
  ],
};
const state: PushPullState = {
  from: '198.18.0.1', join: true,
  members: [{ id: '198.18.0.1', addr: '198.18.0.1', port: 7946, state: 'alive', inc: 3 }, { id: '198.18.0.2', addr: '198.18.0.2', port: 7000, state: 'left', inc: 9 }],
  user: new Uint8Array(randomBytes(5000)),
};

function only<T>(f: () => T): T | GossipDecodeError {
  try { return f(); } catch (e) { if (e instanceof GossipDecodeError) return e; throw e; }
}

describe('gossip codec', () => {
  it('round-trips every message type and a full state; sizes are exact', () => {
    const b = encodePacket(packet);
    expect(decodePacket(b)).toEqual(packet);
    expect(b.length).toBe(packetOverhead(packet.from) + packet.msgs.reduce((a, m) => a + msgSize(m), 0));
    expect(decodeState(encodeState(state))).toEqual(state);
  });

  it('rejects every truncation, trailing bytes and junk addresses', () => {
    const b = encodePacket(packet);
    for (let n = 0; n < b.length; n++) expect(only(() => decodePacket(b.subarray(0, n)))).toBeInstanceOf(GossipDecodeError);
    expect(only(() => decodePacket(Buffer.concat([b, Buffer.from([0])])))).toBeInstanceOf(GossipDecodeError);
    const s = encodeState(state);
    for (const n of [0, 1, 5, 20, s.length - 1]) expect(only(() => decodeState(s.subarray(0, n)))).toBeInstanceOf(GossipDecodeError);
    expect(() => encodePacket({ from: 'evil\nname', msgs: [{ t: 'ack', seq: 1 }] })).toThrow(GossipDecodeError);
  });

  it('survives 20 000 random and mutated inputs: decoded or GossipDecodeError, nothing else', () => {
    const rnd = seededRandom(11);
    const good = encodePacket(packet);
    const goodState = encodeState({ ...state, user: new Uint8Array(10) });
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let b: Buffer;
      if (i % 3 === 0) b = randomBytes(Math.floor(rnd() * 200));
      else {
        b = Buffer.from(i % 3 === 1 ? good : goodState);
        for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      }
      const r = only(() => (i % 2 === 0 ? decodePacket(b) : decodeState(b)));
      if (!(r instanceof GossipDecodeError)) decoded++;
    }
    expect(decoded).toBeLessThan(20_000);
  });
});

describe('gossip sealing', () => {
  const [k1, k2, k3] = [generateKey(), generateKey(), generateKey()];
  const old = gossipKeys(parseKeyFile(`${k1}\n`));
  const both = gossipKeys(parseKeyFile(`${k2}\n${k1}\n`));
  const other = gossipKeys(parseKeyFile(`${k3}\n`));

  it('first key seals, all keys open: a rotation step talks to both sides', () => {
    const plain = encodePacket(packet);
    const fromOld = seal(old, 'packet', plain);
    const fromNew = seal(both, 'packet', plain);
    expect(fromOld.length).toBe(plain.length + SEAL_OVERHEAD);
    expect(open(both, 'packet', fromOld)).toEqual({ ok: true, plain });
    expect(open(both, 'packet', fromNew)).toEqual({ ok: true, plain });
    expect(open(old, 'packet', fromNew)).toEqual({ ok: false, why: 'unknown-key' });
  });

  it('refuses another cluster\'s key, a flipped bit, a truncation, and a datagram replayed as a stream frame', () => {
    const sealed = seal(old, 'packet', encodePacket(packet));
    expect(open(other, 'packet', sealed)).toEqual({ ok: false, why: 'unknown-key' });
    for (const i of [7, 20, sealed.length - 1]) {
      const b = Buffer.from(sealed);
      b[i]! ^= 1;
      expect(open(old, 'packet', b)).toEqual({ ok: false, why: 'auth' });
    }
    expect(open(old, 'packet', sealed.subarray(0, SEAL_OVERHEAD - 1))).toEqual({ ok: false, why: 'malformed' });
    expect(open(old, 'packet', sealed.subarray(0, sealed.length - 1))).toEqual({ ok: false, why: 'auth' });
    expect(open(old, 'stream', sealed)).toEqual({ ok: false, why: 'malformed' });
  });

  it('derives a gossip key: the secret itself never seals', () => {
    const ring = parseKeyFile(`${k1}\n`);
    expect(old[0]!.key.equals(ring.keys[0]!.secret)).toBe(false);
    expect(old[0]!.id).toBe(ring.keys[0]!.id);
  });
});

describe('gossip seeds and CLI formatting', () => {
  const lease = (ip: string, data: Record<string, unknown>): Lease =>
    ({ subnet: { addr: 0, len: 24 }, leaseId: '1', attrs: { publicIP: ip, backendType: 'vxlan', backendData: data } }) as unknown as Lease;

  it('takes gossip endpoints from the leases, skipping ourselves and junk ports', () => {
    const seeds = seedsFromLeases([lease('198.18.0.1', { GossipPort: 7946 }), lease('198.18.0.2', { GossipPort: 7000 }), lease('198.18.0.3', {}), lease('198.18.0.4', { GossipPort: '7946' }), lease('198.18.0.5', { GossipPort: 70000 })], '198.18.0.1');
    expect(seeds).toEqual([{ addr: '198.18.0.2', port: 7000 }]);
  });

  it('prints peers with this host first and the last contact', () => {
    const out = peersTable({
      localId: '198.18.0.2',
      members: [
        { id: '198.18.0.10', addr: '198.18.0.10', port: 7946, state: 'dead', incarnation: 4, lastContact: 1000 },
        { id: '198.18.0.2', addr: '198.18.0.2', port: 7946, state: 'alive', incarnation: 9 },
        { id: '198.18.0.3', addr: '198.18.0.3', port: 7946, state: 'suspect', incarnation: 1 },
      ],
    }, 31_000);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^MEMBER\s+GOSSIP ADDRESS\s+STATE\s+INCARNATION\s+LAST CONTACT$/);
    expect(lines[1]).toMatch(/198\.18\.0\.2 \(this host\).*alive\s+9\s+-$/);
    expect(lines[2]).toMatch(/198\.18\.0\.3 .*suspect\s+1\s+never$/);
    expect(lines[3]).toMatch(/198\.18\.0\.10 .*dead\s+4\s+30s ago$/);
  });

  it('summarises gossip health for weft status', () => {
    expect(gossipStatusLine(undefined)).toBe('-');
    expect(gossipStatusLine({ running: false, port: 7946 })).toBe('port 7946, waiting for keys');
    expect(gossipStatusLine({ running: true, port: 7946, members: 3, alive: 2, suspect: 0, dead: 1, dropped: { auth: 2, malformed: 1 } }))
      .toBe('port 7946, 3 members: 2 alive, 0 suspect, 1 dead; 3 datagrams dropped (bad key, malformed)');
  });
});
