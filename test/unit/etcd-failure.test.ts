// The reason an etcd warning gives, from the error texts the gRPC client really
// produces; and TLS files refused before a client is built, naming the file.
import { describe, expect, it } from 'vitest';
import { etcdFailureKind } from '../../ipam/etcd-failure.js';
import { checkTlsFiles, etcdUnavailable } from '../../ipam/etcd-client.js';
import { WeftError } from '../../ipam/errors.js';

describe('etcdFailureKind', () => {
  it.each([
    ['14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ', 'connection refused'],
    ['14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain', 'TLS verification failed'],
    ["14 UNAVAILABLE: Hostname/IP does not match certificate's altnames: IP: 198.18.0.1 is not in the cert's list", 'TLS verification failed'],
    ['14 UNAVAILABLE: Client network socket disconnected before secure TLS connection was established', 'TLS verification failed'],
    ['4 DEADLINE_EXCEEDED: Deadline exceeded after 5.001s', 'timed out'],
    ['14 UNAVAILABLE: Name resolution failed for target dns:etcd.invalid:2379', 'host name not resolved'],
    ['something else entirely', 'unreachable'],
  ])('%s -> %s', (text, kind) => {
    expect(etcdFailureKind(new Error(text))).toBe(kind);
  });

  it('puts the kind into the message of the wrapped error, and reads it back', () => {
    const e = etcdUnavailable('get', new Error('14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.1:2379'), ['http://10.0.0.1:2379']);
    expect(e.message).toMatch(/^etcd get failed \(connection refused\): /);
    expect(etcdFailureKind(e)).toBe('connection refused');
    expect(etcdFailureKind(new WeftError('UNAVAILABLE', 'x', { reason: 'Deadline exceeded' }))).toBe('timed out');
  });
});

describe('checkTlsFiles', () => {
  it('refuses a CA file that is not PEM, naming it', () => {
    expect(() => checkTlsFiles({ ca: Buffer.from('not a certificate\n') }, { ca: '/etc/weft/ca.txt' })).toThrow(
      '--etcd-cafile /etc/weft/ca.txt: is not a PEM certificate',
    );
    const garbled = Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(() => checkTlsFiles({ ca: garbled }, { ca: '/ca.pem' })).toThrow(/--etcd-cafile \/ca.pem: is not a readable PEM certificate/);
  });
  it('refuses a key file that is not a key, naming it', () => {
    expect(() => checkTlsFiles({ key: Buffer.from('hello') }, { key: '/k.pem' })).toThrow(/--etcd-keyfile \/k.pem: is not a readable PEM private key/);
  });
});
