// CNI_* environment per command: what each command requires, what it
// tolerates, and that every problem is named in one code-4 error.
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../../cni-plugin/env.js';
import { CniError } from '../../cni-plugin/errors.js';

const FULL = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/run/netns/test',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

function error(env: Record<string, string>): CniError {
  try {
    parseEnv(env);
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('parseEnv', () => {
  it.each([
    ['ADD', {}],
    ['CHECK', {}],
    ['DEL', {}],
    ['DEL', { CNI_NETNS: '' }], // containerd after the sandbox is gone
    ['DEL', { CNI_NETNS: 'dummy' }], // not a path: DEL cleans up anyway
    ['GC', { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' }],
    ['STATUS', { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '', CNI_PATH: '' }],
    ['VERSION', { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: 'dummy', CNI_PATH: '' }],
  ])('%s accepts %j over a full environment', (command, overrides) => {
    expect(parseEnv({ ...FULL, ...overrides, CNI_COMMAND: command }).command).toBe(command);
  });

  it.each([
    ['ADD', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME']],
    ['CHECK', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME']],
    ['DEL', ['CNI_CONTAINERID', 'CNI_IFNAME']],
    ['GC', ['CNI_PATH']],
    ['STATUS', []],
    ['VERSION', []],
  ])('%s requires %j', (command, required) => {
    if (required.length === 0) {
      expect(() => parseEnv({ CNI_COMMAND: command })).not.toThrow();
      return;
    }
    const e = error({ CNI_COMMAND: command });
    expect(e.code).toBe(4);
    expect(e.msg).toBe(`invalid environment variables: ${required.join(', ')}`);
  });

  it.each([
    [{ CNI_COMMAND: '' }, 'CNI_COMMAND'],
    [{ CNI_COMMAND: 'add' }, 'CNI_COMMAND'],
    [{ CNI_COMMAND: 'INIT' }, 'CNI_COMMAND'],
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: '-bad' }, 'CNI_CONTAINERID'],
    [{ CNI_COMMAND: 'ADD', CNI_IFNAME: 'averyveryverylongname' }, 'CNI_IFNAME'],
    [{ CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth:0' }, 'CNI_IFNAME'],
    [{ CNI_COMMAND: 'ADD', CNI_NETNS: 'relative/path' }, 'CNI_NETNS'],
    [{ CNI_COMMAND: 'ADD', CNI_ARGS: 'nokey' }, 'CNI_ARGS'],
    [{ CNI_COMMAND: 'DEL', CNI_ARGS: 'IgnoreUnknown=maybe' }, 'CNI_ARGS'],
  ])('%j is invalid in %s', (overrides, variable) => {
    const e = error({ ...FULL, ...overrides });
    expect(e.code).toBe(4);
    expect(e.msg).toBe(`invalid environment variables: ${variable}`);
  });

  it('names every invalid variable at once', () => {
    const e = error({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: '!', CNI_IFNAME: '..', CNI_ARGS: 'x' });
    expect(e.msg).toBe('invalid environment variables: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS');
    expect(e.details).toContain('CNI_NETNS: missing');
    expect(e.details).toContain('CNI_IFNAME: must not be "." or ".."');
  });

  it('returns the typed fields of ADD', () => {
    expect(parseEnv({ ...FULL, CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web' })).toEqual({
      command: 'ADD',
      containerId: 'c0ffee',
      netns: '/run/netns/test',
      ifname: 'eth0',
      path: ['/opt/cni/bin', '/usr/lib/cni'],
      args: { ignoreUnknown: true, pod: { name: 'web' }, unknown: [] },
    });
  });

  it('leaves netns out of DEL when empty', () => {
    const env = parseEnv({ ...FULL, CNI_COMMAND: 'DEL', CNI_NETNS: '' });
    expect('netns' in env).toBe(false);
  });
});
