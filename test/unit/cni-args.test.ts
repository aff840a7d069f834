// CNI_ARGS parsing and the lexical rules for IDs, names, interfaces, MACs and CIDRs.
import { describe, expect, it } from 'vitest';
import { parseCniArgs, rejectUnknownArgs, type CniArgs } from '../../cni-plugin/args.js';
import { CniError } from '../../cni-plugin/errors.js';
import { cidrFamily, identifierProblem, ifnameProblem, normalizeMac } from '../../cni-plugin/syntax.js';

function parsed(raw: string): CniArgs {
  const r = parseCniArgs(raw);
  if ('problem' in r) throw new Error(r.problem);
  return r;
}

describe('parseCniArgs', () => {
  it('reads the Kubernetes pod identity', () => {
    expect(
      parsed('K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1').pod,
    ).toEqual({ namespace: 'default', name: 'web-0', infraContainerId: 'abc', uid: 'u-1' });
  });

  it.each([
    ['', false],
    ['IgnoreUnknown=1', true],
    ['IgnoreUnknown=true', true],
    ['IgnoreUnknown=TRUE', true],
    ['IgnoreUnknown=0', false],
    ['IgnoreUnknown=false', false],
  ])('%j -> ignoreUnknown %s', (raw, flag) => {
    expect(parsed(raw).ignoreUnknown).toBe(flag);
  });

  it('skips empty segments', () => {
    expect(parsed('K8S_POD_NAME=a;;').pod).toEqual({ name: 'a' });
  });

  it.each(['FOO', 'A=B=C', '=x', 'IgnoreUnknown=yes'])('%j is malformed', (raw) => {
    expect('problem' in parseCniArgs(raw)).toBe(true);
  });

  it('rejects unknown keys with code 2 naming key and value', () => {
    try {
      rejectUnknownArgs(parsed('FOO=bar;BAZ=1'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CniError);
      expect((e as CniError).code).toBe(2);
      expect((e as CniError).msg).toContain('FOO=bar');
      expect((e as CniError).details).toContain('BAZ');
    }
  });

  it('lets unknown keys pass with IgnoreUnknown (podman sends IgnoreUnknown=1)', () => {
    expect(() => rejectUnknownArgs(parsed('IgnoreUnknown=1;FOO=bar;K8S_POD_NAME=web'))).not.toThrow();
  });
});

describe('syntax rules', () => {
  it.each([
    ['abc', true],
    ['3f6940ab5ab4_x.y-z', true],
    ['', false],
    ['-leading', false],
    ['_x', false],
    ['has space', false],
    ['a/b', false],
  ])('identifier %j valid=%s', (v, ok) => {
    expect(identifierProblem(v) === undefined).toBe(ok);
  });

  it.each([
    ['eth0', true],
    ['a'.repeat(15), true],
    ['a'.repeat(16), false],
    ['ééééééééé', false], // 18 bytes in UTF-8
    ['', false],
    ['.', false],
    ['..', false],
    ['a/b', false],
    ['a:b', false],
    ['a b', false],
    ['a\tb', false],
  ])('ifname %j valid=%s', (v, ok) => {
    expect(ifnameProblem(v) === undefined).toBe(ok);
  });

  it.each([
    ['C2:11:22:33:44:55', 'c2:11:22:33:44:55'],
    ['c2-11-22-33-44-55', undefined],
    ['c2:11:22:33:44', undefined],
    ['01:00:5e:00:00:01', undefined], // multicast
  ])('mac %j -> %s', (v, out) => {
    expect(normalizeMac(v)).toBe(out);
  });

  it.each([
    ['10.42.7.5/24', 4],
    ['fd00::5/64', 6],
    ['10.42.7.5', undefined],
    ['10.42.7.5/33', undefined],
    ['10.42.7.5/024', undefined],
    ['fd00::5/129', undefined],
    ['host/24', undefined],
  ])('cidr %j -> %s', (v, family) => {
    expect(cidrFamily(v)).toBe(family);
  });
});
