// Hostile input for an agent's gossip port, run inside a lab namespace:
// COUNT datagrams, a third random bytes, a third real sealed packets with
// bits flipped (fail authentication), a third correctly sealed with the
// cluster's key around plaintext that does not decode (truncated or mutated
// packets: they pass authentication and must be refused by the decoder);
// then a few hostile TCP connections (garbage, an oversized length prefix,
// a half frame left hanging). Bounded in count and time; prints a JSON summary.
// Usage: node gossip-fuzz.js --to IP --port P --key BASE64 [--count N]

import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { decodePacket, encodePacket, GossipDecodeError } from '../../agent/gossip/codec.js';
import { seal } from '../../agent/gossip/seal.js';
import { deriveKey, keyFromSecret } from '../../ipam/keys.js';

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const to = arg('to');
const port = Number(arg('port'));
const count = Math.min(100_000, Number(arg('count', '10000')));
const k = keyFromSecret(Buffer.from(arg('key'), 'base64'));
const keys = [{ id: k.id, key: deriveKey(k.secret, 'gossip') }];
const deadline = Date.now() + 60_000;

const template = encodePacket({
  from: '198.18.0.250',
  msgs: [
    { t: 'ping', seq: 1, target: to, srcAddr: '198.18.0.250', srcPort: 7946 },
    { t: 'alive', id: '198.18.0.250', addr: '198.18.0.250', port: 7946, inc: 1 },
    { t: 'user', origin: '198.18.0.250', seq: 3, data: Buffer.from('fuzz') },
  ],
});

function undecodable(): Buffer {
  for (;;) {
    const b = Buffer.from(template.subarray(0, 1 + Math.floor(Math.random() * template.length)));
    for (let i = 0; i < 3; i++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
    try {
      decodePacket(b);
    } catch (e) {
      if (e instanceof GossipDecodeError) return b;
      throw e;
    }
  }
}

const sock = createSocket(to.includes(':') ? 'udp6' : 'udp4');
const sent = { random: 0, tampered: 0, sealedGarbage: 0, tcp: 0 };
for (let i = 0; i < count && Date.now() < deadline; i++) {
  let b: Buffer;
  if (i % 3 === 0) { b = randomBytes(1 + Math.floor(Math.random() * 1400)); sent.random++; }
  else if (i % 3 === 1) {
    b = seal(keys, 'packet', template);
    b[Math.floor(Math.random() * b.length)]! ^= 1 << Math.floor(Math.random() * 8);
    sent.tampered++;
  } else { b = seal(keys, 'packet', undecodable()); sent.sealedGarbage++; }
  await new Promise<void>((r) => sock.send(b, port, to, () => r()));
  if (i % 200 === 0) await new Promise((r) => setTimeout(r, 2)); // paced: the socket buffer must not be what drops them
}
sock.close();

async function tcp(payload: Buffer, hangMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = connect({ host: to, port });
    const done = (): void => { s.destroy(); resolve(); };
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => { s.write(payload); setTimeout(done, hangMs); });
  });
  sent.tcp++;
}
const huge = Buffer.alloc(4); huge.writeUInt32BE(0xffffffff);
const half = Buffer.alloc(8); half.writeUInt32BE(1000);
for (let i = 0; i < 10; i++) await tcp(randomBytes(100 + i * 50), 50);
await tcp(huge, 200);
await tcp(half, 200);
const sealedJunk = seal(keys, 'stream', randomBytes(64));
const framed = Buffer.alloc(4 + sealedJunk.length); framed.writeUInt32BE(sealedJunk.length); sealedJunk.copy(framed, 4);
await tcp(framed, 200);
console.log(JSON.stringify(sent));
