// Requested addresses and MACs: the three places CNI carries them (runtimeConfig,
// args.cni, CNI_ARGS IP=/MAC=), merged without silently dropping any; then through
// the protocol with the exact CNI_ARGS podman 4.3 sends; then the agent's CNI
// adapter turning a refused request into a CNI error that names the field.

import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../cni-plugin/args.js';
import { CniError, handleCniRequest, type AttachmentService } from '../../cni-plugin/index.js';
import { requestedIdentity } from '../../cni-plugin/requests.js';
import { cniService } from '../../agent/cni-service.js';
import type { AttachmentService as Attachments } from '../../agent/attachments/service.js';
import { WeftError } from '../../ipam/errors.js';

const catchCni = (fn: () => unknown): CniError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('did not throw');
};

describe('CNI_ARGS IP and MAC', () => {
  it('reads podman 4.3 arguments', () => {
    const a = parseCniArgs('IgnoreUnknown=1;IP=10.42.7.9;MAC=C2:11:22:33:44:55;K8S_POD_NAME=web');
    expect(a).toMatchObject({ ips: ['10.42.7.9'], mac: 'c2:11:22:33:44:55', pod: { name: 'web' }, unknown: [] });
  });
  it('takes host-local lists and prefixes', () => {
    expect(parseCniArgs('IP=10.42.7.9/24,fd00::1')).toMatchObject({ ips: ['10.42.7.9', 'fd00::1'] });
  });
  it.each([
    ['IP=10.42.7.300', 'IP=10.42.7.300'],
    ['IP=', 'IP='],
    ['MAC=01:00:5e:00:00:01', 'not a unicast MAC'],
    ['MAC=zz', 'MAC=zz'],
  ])('%j is malformed (code 4 through the env)', (raw, named) => {
    const r = parseCniArgs(raw);
    expect('problem' in r && r.problem).toContain(named);
  });
});

describe('requestedIdentity', () => {
  it('is empty when nothing is asked', () => {
    expect(requestedIdentity({}, {})).toEqual({});
  });
  it('takes each place alone, naming it', () => {
    expect(requestedIdentity({ ips: ['10.42.7.9/24'] }, {}).ip).toEqual({ address: '10.42.7.9', field: 'runtimeConfig.ips' });
    expect(requestedIdentity({}, { ips: ['10.42.7.9'] }).ip).toEqual({ address: '10.42.7.9', field: 'CNI_ARGS IP' });
    expect(requestedIdentity({ args: { cni: { ips: ['10.42.7.9/24'], mac: 'C2:00:00:00:00:01' } } }, {})).toEqual({
      ip: { address: '10.42.7.9', field: 'args.cni.ips' },
      mac: { value: 'c2:00:00:00:00:01', field: 'args.cni.mac' },
    });
    expect(requestedIdentity({}, { mac: 'c2:00:00:00:00:01' }).mac).toEqual({ value: 'c2:00:00:00:00:01', field: 'CNI_ARGS MAC' });
  });
  it('accepts places that agree (podman sends both runtimeConfig and CNI_ARGS)', () => {
    const r = requestedIdentity({ ips: ['10.42.7.9/24'], mac: 'c2:00:00:00:00:01' }, { ips: ['10.42.7.9'], mac: 'c2:00:00:00:00:01' });
    expect(r).toEqual({ ip: { address: '10.42.7.9', field: 'runtimeConfig.ips' }, mac: { value: 'c2:00:00:00:00:01', field: 'runtimeConfig.mac' } });
  });
  it('refuses places that disagree with code 7, naming both', () => {
    let e = catchCni(() => requestedIdentity({ ips: ['10.42.7.9/24'] }, { ips: ['10.42.7.10'] }));
    expect(e.code).toBe(7);
    expect(`${e.msg} ${e.details}`).toMatch(/CNI_ARGS IP.*10\.42\.7\.10.*runtimeConfig\.ips.*10\.42\.7\.9/);
    e = catchCni(() => requestedIdentity({ mac: 'c2:00:00:00:00:01' }, { mac: 'c2:00:00:00:00:02' }));
    expect(e.code).toBe(7);
    expect(e.msg).toContain('CNI_ARGS MAC');
  });
  it('refuses two addresses in one place and IPv6 (weft gives one IPv4 address)', () => {
    expect(catchCni(() => requestedIdentity({ ips: ['10.42.7.9/24', '10.42.7.10/24'] }, {})).msg).toContain('runtimeConfig.ips');
    expect(catchCni(() => requestedIdentity({}, { ips: ['fd00::1'] })).details).toContain('IPv4 addresses only');
    expect(catchCni(() => requestedIdentity({ args: { cni: { mac: 'nope' } } }, {})).msg).toContain('args.cni.mac');
    expect(catchCni(() => requestedIdentity({ args: { cni: { ips: 'x' } } }, {})).code).toBe(6);
  });
});

describe('ADD with a requested address', () => {
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'podman', type: 'weft' });

  /** The agent's adapter over a fake attachment service that fails as the real pool does. */
  function adapter(fail?: WeftError): { service: AttachmentService; asked: unknown[] } {
    const asked: unknown[] = [];
    const attachments = {
      attach: async (body: unknown) => {
        asked.push(body);
        if (fail) throw fail;
        return { containerId: 'c1', ifname: 'eth0', netns: '/run/netns/x', ip: '10.42.7.9/24', gateway: '10.42.7.1', mac: 'c2:11:22:33:44:55', mtu: 1450, hostIfName: 'vw1', routes: [], createdAt: '' };
      },
    } as unknown as Attachments; // only attach is called on ADD
    return { service: cniService({ attachments, notReady: () => [], mtu: () => 1450 }), asked };
  }

  it('passes podman 4.3 IP= and MAC= on to the attachment service', async () => {
    const { service, asked } = adapter();
    const r = await handleCniRequest({ env: { ...env, CNI_ARGS: 'IgnoreUnknown=1;IP=10.42.7.9;MAC=c2:11:22:33:44:55;K8S_POD_NAME=web' }, stdin }, service);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(asked).toEqual([expect.objectContaining({ ip: '10.42.7.9', mac: 'c2:11:22:33:44:55', name: 'web' })]);
  });

  it('an address in use is weft code 100 naming the CNI field', async () => {
    const { service } = adapter(new WeftError('CONFLICT', 'ip: 10.42.7.9 is already held by container other interface eth0', { field: 'ip' }));
    const r = await handleCniRequest({ env: { ...env, CNI_ARGS: 'IgnoreUnknown=1;IP=10.42.7.9' }, stdin }, service);
    const out = JSON.parse(r.stdout) as { code: number; msg: string; details: string };
    expect(out.code).toBe(100);
    expect(out.msg).toBe('CNI_ARGS IP asks for 10.42.7.9, which is already in use');
    expect(out.details).toContain('held by container other');
  });

  it('an address outside the host subnet is code 7 naming the CNI field', async () => {
    const { service } = adapter(new WeftError('INVALID_ARGUMENT', 'ip: 10.9.9.9 cannot be given to a container in 10.42.7.0/24', { field: 'ip' }));
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'podman', type: 'weft', capabilities: { ips: true }, runtimeConfig: { ips: ['10.9.9.9/24'] } });
    const r = await handleCniRequest({ env, stdin: conf }, service);
    const out = JSON.parse(r.stdout) as { code: number; msg: string; details: string };
    expect(out).toMatchObject({ code: 7, msg: 'invalid network config: runtimeConfig.ips' });
    expect(out.details).toContain('10.42.7.0/24');
  });

  it('other failures keep their own code', async () => {
    const { service } = adapter(new WeftError('EXHAUSTED', 'no free address'));
    const r = await handleCniRequest({ env, stdin }, service);
    expect((JSON.parse(r.stdout) as { code: number }).code).toBe(101);
  });
});
