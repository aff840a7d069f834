import { describe, expect, it } from 'vitest';
import { decodeKey, deriveKey, describeKeyring, generateKey, keyId, parseKeyFile, sameKeyring } from '../../ipam/keys.js';
import { isWeftError } from '../../ipam/errors.js';

const k1 = generateKey();
const k2 = generateKey();

describe('key file', () => {
  it('keeps the order: the first key seals, all open', () => {
    const ring = parseKeyFile(`# weft keys\n${k1}\n\n  ${k2}  \n`);
    expect(ring.keys.map((k) => k.secret.toString('base64'))).toEqual([k1, k2]);
    expect(ring.keys[0]!.id).toBe(keyId(Buffer.from(k1, 'base64')));
  });

  it('drops a repeated key', () => {
    expect(parseKeyFile(`${k1}\n${k1}\n`).keys).toHaveLength(1);
  });

  it.each([
    ['empty', ''],
    ['only comments', '# nothing\n'],
    ['short key', Buffer.alloc(16).toString('base64')],
    ['long key', Buffer.alloc(33).toString('base64')],
    ['not base64', 'this is not a key at all!!'],
  ])('refuses %s and never echoes the line', (_, text) => {
    try {
      parseKeyFile(text, '--key-file /k');
      expect.unreachable();
    } catch (e) {
      expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
      expect((e as Error).message).toContain('--key-file /k');
      if (text.length > 10) expect((e as Error).message).not.toContain(text);
    }
  });

  it('decodes only canonical base64 of 32 bytes', () => {
    expect(decodeKey(k1)?.length).toBe(32);
    expect(decodeKey(k1.slice(1))).toBeUndefined();
  });
});

describe('derivation', () => {
  const secret = Buffer.from(k1, 'base64');
  it('gives different keys per purpose and context, equal for equal inputs', () => {
    const a = deriveKey(secret, 'gossip');
    expect(a).toHaveLength(32);
    expect(deriveKey(secret, 'gossip')).toEqual(a);
    expect(deriveKey(secret, 'udp', '198.18.0.11>198.18.0.12')).not.toEqual(deriveKey(secret, 'udp', '198.18.0.12>198.18.0.11'));
    expect(deriveKey(secret, 'udp')).not.toEqual(a);
    expect(a.equals(secret)).toBe(false);
  });

  it('describes keys by id only', () => {
    const ring = parseKeyFile(`${k1}\n${k2}`);
    const d = describeKeyring(ring);
    expect(d).toHaveLength(2);
    expect(d.join(' ')).not.toContain(k1.slice(0, 8));
    expect(sameKeyring(ring, parseKeyFile(`${k1}\n${k2}`))).toBe(true);
    expect(sameKeyring(ring, parseKeyFile(`${k2}\n${k1}`))).toBe(false);
  });
});
