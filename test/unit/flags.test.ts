// The flag parser and the agent's flag table: flags beat WEFT_* variables,
// which beat defaults; bad values name the flag.

import { describe, expect, it } from 'vitest';
import { envName, formatHelp, formatMarkdownTable, parseArgs } from '../../agent/flags.js';
import { agentFlags, subnetFileFrom } from '../../agent/options.js';
import { isWeftError } from '../../ipam/errors.js';

describe('parseArgs', () => {
  it('fills defaults, then environment, then flags', () => {
    const d = parseArgs([], agentFlags, {});
    expect(d.values['etcd-prefix']).toBe('/weft/network');
    expect(d.values['etcd-endpoints']).toEqual(['http://127.0.0.1:2379']);
    expect(d.values['lease-ttl']).toBe(86400);
    const e = parseArgs([], agentFlags, { WEFT_ETCD_PREFIX: '/coreos.com/network', WEFT_IP_MASQ: 'true', WEFT_ETCD_ENDPOINTS: 'http://a:1, http://b:2' });
    expect(e.values['etcd-prefix']).toBe('/coreos.com/network');
    expect(e.values['ip-masq']).toBe(true);
    expect(e.values['etcd-endpoints']).toEqual(['http://a:1', 'http://b:2']);
    const f = parseArgs(['--etcd-prefix=/x', '--ip-masq', 'false', '--lease-ttl', '60'], agentFlags, { WEFT_ETCD_PREFIX: '/y' });
    expect(f.values).toMatchObject({ 'etcd-prefix': '/x', 'ip-masq': false, 'lease-ttl': 60 });
  });

  it('accepts a bare boolean flag followed by a positional', () => {
    const r = parseArgs(['--json', 'extra'], [{ name: 'json', type: 'bool', help: '' }]);
    expect(r.values['json']).toBe(true);
    expect(r.positional).toEqual(['extra']);
  });

  it.each([
    [['--no-such-flag'], 'unknown flag --no-such-flag'],
    [['--lease-ttl', 'soon'], '--lease-ttl: "soon" is not a whole number'],
    [['--lease-ttl', '1'], '--lease-ttl: 1 is out of range'],
    [['--ip-masq=maybe'], '--ip-masq: "maybe" is not a boolean'],
    [['--etcd-prefix'], '--etcd-prefix needs a value'],
  ])('rejects %j with a message naming the flag', (argv, msg) => {
    try {
      parseArgs(argv, agentFlags, {});
      expect.unreachable();
    } catch (e) {
      expect(isWeftError(e, 'INVALID_ARGUMENT')).toBe(true);
      expect((e as Error).message).toContain(msg);
    }
  });

  it('names the variable when an environment value is bad', () => {
    expect(() => parseArgs([], agentFlags, { WEFT_LEASE_TTL: 'x' })).toThrow(/WEFT_LEASE_TTL/);
  });

  it('derives the subnet file from the run dir unless given', () => {
    expect(subnetFileFrom(parseArgs(['--run-dir', '/run/w2'], agentFlags).values)).toBe('/run/w2/subnet.env');
    expect(subnetFileFrom(parseArgs(['--subnet-file', '/x/s.env'], agentFlags).values)).toBe('/x/s.env');
  });

  it('documents every flag with its environment variable in help and the README table', () => {
    const help = formatHelp('usage', agentFlags);
    const table = formatMarkdownTable(agentFlags);
    for (const f of agentFlags) {
      expect(help).toContain(`--${f.name}`);
      expect(table).toContain(`\`${envName(f.name)}\``);
    }
    expect(envName('etcd-cafile')).toBe('WEFT_ETCD_CAFILE');
  });
});
