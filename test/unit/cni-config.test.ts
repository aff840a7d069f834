// The network config on stdin: one case per rule, each with the CNI code a
// runtime would see.
import { describe, expect, it } from 'vitest';
import { parseConfig, type NetConf } from '../../cni-plugin/config.js';
import { CniError } from '../../cni-plugin/errors.js';
import type { CniCommand } from '../../cni-plugin/version.js';

const BASE = { cniVersion: '1.1.0', name: 'weftnet', type: 'weft' };

function parse(conf: unknown, command: CniCommand = 'ADD', pluginType?: string): NetConf {
  return parseConfig(typeof conf === 'string' ? conf : JSON.stringify(conf), command, pluginType === undefined ? {} : { pluginType });
}

function failure(conf: unknown, command: CniCommand = 'ADD'): CniError {
  try {
    parse(conf, command);
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('parseConfig accepts', () => {
  it('a minimal config with defaults', () => {
    expect(parse(BASE)).toEqual({ cniVersion: '1.1.0', name: 'weftnet', type: 'weft', runDir: '/run/weft' });
  });

  it('weft fields, dns, args and an empty ipam', () => {
    const conf = parse({
      ...BASE,
      runDir: '/var/run/weft2',
      mtu: 1400,
      ipam: {},
      ipMasq: false,
      dns: { nameservers: ['10.42.0.1'], search: ['weft.local'] },
      args: { cni: { labels: [{ key: 'app', value: 'web' }] } },
      'cni.dev/some-future-key': 1,
    });
    expect(conf.runDir).toBe('/var/run/weft2');
    expect(conf.mtu).toBe(1400);
    expect(conf.dns).toEqual({ nameservers: ['10.42.0.1'], search: ['weft.local'] });
    expect(conf.args).toEqual({ cni: { labels: [{ key: 'app', value: 'web' }] } });
  });

  it('the mac and ips capabilities through runtimeConfig', () => {
    const conf = parse({
      ...BASE,
      capabilities: { mac: true, ips: true, portMappings: false },
      runtimeConfig: { mac: 'C2:11:22:33:44:55', ips: ['10.42.7.9/24', 'fd42::9/64'], portMappings: [] },
    });
    expect(conf.mac).toBe('c2:11:22:33:44:55');
    expect(conf.ips).toEqual(['10.42.7.9/24', 'fd42::9/64']);
  });

  it('another plugin type when told its executable name', () => {
    expect(parse({ ...BASE, type: 'weft-cni' }, 'ADD', 'weft-cni').type).toBe('weft-cni');
  });

  it('cniVersions, picking the highest shared version', () => {
    expect(parse({ name: 'n', type: 'weft', cniVersions: ['0.4.0', '1.0.0', '9.9.9'] }).cniVersion).toBe('1.0.0');
  });

  it('a prevResult, read into the internal shape', () => {
    const conf = parse({
      ...BASE,
      cniVersion: '0.4.0',
      prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }] },
    });
    expect(conf.prevResult).toEqual({ interfaces: [], ips: [{ address: '10.0.0.2/24' }], routes: [], dns: {} });
  });
});

describe('GC attachments', () => {
  const gc = (extra: object): NetConf => parse({ ...BASE, ...extra }, 'GC');
  const a = { containerID: 'c1', ifname: 'eth0' };
  const b = { containerID: 'c2', ifname: 'eth0' };

  it('reads cni.dev/valid-attachments', () => {
    expect(gc({ 'cni.dev/valid-attachments': [a] }).validAttachments).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
  });

  it('reads the older cni.dev/attachments', () => {
    expect(gc({ 'cni.dev/attachments': [b] }).validAttachments).toEqual([{ containerId: 'c2', ifname: 'eth0' }]);
  });

  it('merges both spellings without repeats', () => {
    expect(gc({ 'cni.dev/valid-attachments': [a], 'cni.dev/attachments': [a, b] }).validAttachments).toHaveLength(2);
  });

  it('takes an empty list as "nothing is in use"', () => {
    expect(gc({ 'cni.dev/valid-attachments': [] }).validAttachments).toEqual([]);
  });

  it('refuses a GC without the list (code 7), never reading it as empty', () => {
    expect(failure(BASE, 'GC').code).toBe(7);
  });

  it('refuses an entry without ifname (code 6)', () => {
    expect(failure({ ...BASE, 'cni.dev/valid-attachments': [{ containerID: 'c1' }] }, 'GC').code).toBe(6);
  });

  it('ignores the keys outside GC', () => {
    expect(parse({ ...BASE, 'cni.dev/valid-attachments': 'junk' }).validAttachments).toBeUndefined();
  });
});

describe('parseConfig rejects', () => {
  it.each<[string, unknown, CniCommand, number, string]>([
    ['stdin that is not JSON', '{"name":', 'ADD', 6, 'failed to decode network config'],
    ['a JSON array', [], 'ADD', 6, 'network config'],
    ['a missing cniVersion', { name: 'n', type: 'weft' }, 'ADD', 1, 'cniVersion is missing'],
    ['an unsupported cniVersion', { ...BASE, cniVersion: '0.2.0' }, 'DEL', 1, 'incompatible CNI versions'],
    ['a malformed cniVersion', { ...BASE, cniVersion: 'v1' }, 'ADD', 6, 'cniVersion'],
    ['CHECK below 0.4.0', { ...BASE, cniVersion: '0.3.1' }, 'CHECK', 1, 'does not allow CHECK'],
    ['STATUS below 1.1.0', { ...BASE, cniVersion: '1.0.0' }, 'STATUS', 1, 'does not allow STATUS'],
    ['GC below 1.1.0', { ...BASE, cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }, 'GC', 1, 'does not allow GC'],
    ['a missing name', { cniVersion: '1.1.0', type: 'weft' }, 'ADD', 7, 'name'],
    ['an invalid name', { ...BASE, name: 'my net' }, 'ADD', 7, 'name'],
    ['a missing type', { cniVersion: '1.1.0', name: 'n' }, 'ADD', 7, 'type'],
    ['another plugin type', { ...BASE, type: 'bridge' }, 'ADD', 7, 'type'],
    ['an ipam section', { ...BASE, ipam: { type: 'host-local' } }, 'ADD', 2, 'ipam'],
    ['ipMasq true', { ...BASE, ipMasq: true }, 'ADD', 2, 'ipMasq'],
    ['an unknown field', { ...BASE, bridge: 'cni0' }, 'ADD', 2, 'bridge=cni0'],
    ['a configuration list', { ...BASE, plugins: [] }, 'ADD', 7, 'plugins'],
    ['an unsupported capability', { ...BASE, capabilities: { portMappings: true } }, 'ADD', 2, 'capabilities.portMappings'],
    ['a capability that is not boolean', { ...BASE, capabilities: { mac: 'yes' } }, 'ADD', 6, 'capabilities.mac'],
    ['an invalid MAC', { ...BASE, runtimeConfig: { mac: 'zz:11:22:33:44:55' } }, 'ADD', 7, 'runtimeConfig.mac'],
    ['an address without prefix', { ...BASE, runtimeConfig: { ips: ['10.42.7.9'] } }, 'ADD', 7, 'runtimeConfig.ips[0]'],
    ['ips that are not strings', { ...BASE, runtimeConfig: { ips: [1] } }, 'ADD', 6, 'runtimeConfig.ips[0]'],
    ['a relative runDir', { ...BASE, runDir: 'run/weft' }, 'ADD', 7, 'runDir'],
    ['an MTU out of range', { ...BASE, mtu: 40 }, 'ADD', 7, 'mtu'],
    ['an MTU that is not an integer', { ...BASE, mtu: '1400' }, 'ADD', 6, 'mtu'],
    ['dns nameservers that are not addresses', { ...BASE, dns: { nameservers: ['ns1'] } }, 'ADD', 6, 'dns.nameservers[0]'],
    ['args that are not an object', { ...BASE, args: 'x' }, 'ADD', 6, 'args'],
    ['a malformed prevResult', { ...BASE, prevResult: { ips: [{ address: 'x' }] } }, 'DEL', 6, 'prevResult.ips[0].address'],
  ])('%s -> code %d', (_name, conf, command, code, mention) => {
    const e = failure(conf, command);
    expect(e.code).toBe(code);
    expect(`${e.msg} ${e.details}`).toContain(mention);
  });
});
