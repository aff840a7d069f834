// Version selection, command gates and the VERSION answer.
import { describe, expect, it } from 'vitest';
import {
  compareVersions,
  requireCommandVersion,
  selectVersion,
  versionInfo,
  type CniCommand,
  type CniVersion,
} from '../../cni-plugin/version.js';
import { CniError } from '../../cni-plugin/errors.js';

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e.code;
    throw e;
  }
  return undefined;
}

describe('VERSION answer', () => {
  it('lists every supported version and speaks 1.1.0', () => {
    expect(JSON.stringify(versionInfo())).toBe(
      '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}',
    );
  });
});

describe('compareVersions', () => {
  it.each([
    ['0.10.0', '0.4.0', 1],
    ['1.0.0', '1.0.0', 0],
    ['0.3.1', '1.1.0', -1],
  ])('%s vs %s', (a, b, sign) => {
    expect(Math.sign(compareVersions(a, b))).toBe(sign);
  });
});

describe('selectVersion', () => {
  it.each<[unknown, unknown, CniVersion]>([
    ['0.3.0', undefined, '0.3.0'],
    ['0.3.1', undefined, '0.3.1'],
    ['0.4.0', undefined, '0.4.0'],
    ['1.0.0', undefined, '1.0.0'],
    ['1.1.0', undefined, '1.1.0'],
    // cniVersions: highest shared version when cniVersion is absent or unsupported.
    [undefined, ['1.0.0', '1.1.0', '2.0.0'], '1.1.0'],
    ['2.0.0', ['0.4.0', '1.0.0'], '1.0.0'],
    // A supported cniVersion is the runtime's choice and wins over the list.
    ['1.0.0', ['1.0.0', '1.1.0'], '1.0.0'],
  ])('cniVersion=%j cniVersions=%j -> %s', (v, list, expected) => {
    expect(selectVersion(v, list)).toBe(expected);
  });

  it.each<[string, unknown, unknown, number]>([
    ['unsupported version', '0.2.0', undefined, 1],
    ['newer than weft', '1.2.0', undefined, 1],
    ['missing version', undefined, undefined, 1],
    ['list without a shared version', undefined, ['0.1.0', '2.0.0'], 1],
    ['malformed version string', 'one', undefined, 6],
    ['non-string version', 1, undefined, 6],
    ['cniVersions not a list', undefined, '1.1.0', 6],
  ])('%s -> code %d', (_name, v, list, code) => {
    expect(codeOf(() => selectVersion(v, list))).toBe(code);
  });

  it('names the supported versions when incompatible', () => {
    try {
      selectVersion('0.2.0', undefined);
    } catch (e) {
      expect((e as CniError).details).toContain('0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0');
    }
  });
});

describe('requireCommandVersion', () => {
  it.each<[CniCommand, CniVersion, number | undefined]>([
    ['CHECK', '0.3.1', 1],
    ['CHECK', '0.4.0', undefined],
    ['STATUS', '1.0.0', 1],
    ['STATUS', '1.1.0', undefined],
    ['GC', '1.0.0', 1],
    ['GC', '1.1.0', undefined],
    ['ADD', '0.3.0', undefined],
    ['DEL', '0.3.0', undefined],
  ])('%s at %s -> %s', (command, version, code) => {
    expect(codeOf(() => requireCommandVersion(command, version))).toBe(code);
  });
});
