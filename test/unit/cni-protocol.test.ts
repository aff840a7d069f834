// handleCniRequest end to end against a fake attachment service: what the
// runtime sees on stdout and as exit code, and what the service is asked.
import { describe, expect, it } from 'vitest';
import { handleCniRequest, type CniResponse } from '../../cni-plugin/protocol.js';
import type {
  AddRequest,
  AttachmentService,
  CheckRequest,
  DelRequest,
  GcAttachment,
  ServiceStatus,
} from '../../cni-plugin/service.js';
import type { InternalResult } from '../../cni-plugin/result.js';

const RESULT: InternalResult = {
  interfaces: [
    { name: 'vethab12', mac: 'aa:bb:cc:00:00:01' },
    { name: 'eth0', mac: 'c2:11:22:33:44:55', sandbox: '/run/netns/t', mtu: 1450 },
  ],
  ips: [{ address: '10.42.7.5/24', gateway: '10.42.7.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.42.7.1' }],
  dns: { nameservers: ['10.42.7.1'], search: ['weft.local'] },
};

type Behaviour = 'ok' | 'hang' | { code: string } | 'throw-sync';

class FakeService implements AttachmentService {
  readonly calls: { method: string; arg: unknown; extra?: unknown }[] = [];
  constructor(
    private readonly behaviour: Behaviour = 'ok',
    private readonly statusAnswer: ServiceStatus = { ready: true },
  ) {}

  private answer<T>(method: string, arg: unknown, value: T, extra?: unknown): Promise<T> {
    this.calls.push({ method, arg, extra });
    const b = this.behaviour;
    if (b === 'throw-sync') throw new Error('synchronous bug');
    if (b === 'hang') return new Promise<T>(() => undefined);
    if (b !== 'ok') return Promise.reject(Object.assign(new Error(`service says ${b.code}`), { code: b.code }));
    return Promise.resolve(value);
  }

  add(req: AddRequest): Promise<InternalResult> {
    return this.answer('add', req, RESULT);
  }
  del(req: DelRequest): Promise<void> {
    return this.answer('del', req, undefined);
  }
  check(req: CheckRequest): Promise<void> {
    return this.answer('check', req, undefined);
  }
  gc(valid: GcAttachment[], networkName: string): Promise<void> {
    return this.answer('gc', valid, undefined, networkName);
  }
  status(networkName: string): Promise<ServiceStatus> {
    return this.answer('status', networkName, this.statusAnswer);
  }
}

const ENV = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/run/netns/t',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
};
const CONF = { cniVersion: '1.1.0', name: 'weftnet', type: 'weft' };

async function run(
  command: string,
  conf: unknown = CONF,
  service: AttachmentService = new FakeService(),
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<CniResponse> {
  const stdin = typeof conf === 'string' ? conf : JSON.stringify(conf);
  return handleCniRequest({ env: { ...ENV, ...env, CNI_COMMAND: command }, stdin }, service, timeoutMs === undefined ? {} : { timeoutMs });
}

function json(res: CniResponse): Record<string, unknown> {
  return JSON.parse(res.stdout) as Record<string, unknown>;
}

function expectError(res: CniResponse, code: number, cniVersion = '1.1.0'): Record<string, unknown> {
  expect(res.exitCode).toBe(1);
  const out = json(res);
  expect(Object.keys(out).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
  expect(out['code']).toBe(code);
  expect(out['cniVersion']).toBe(cniVersion);
  return out;
}

describe('VERSION', () => {
  it.each(['{"cniVersion":"1.0.0"}', '', 'not json'])('answers the same for stdin %j', async (stdin) => {
    const res = await run('VERSION', stdin, new FakeService(), { CNI_NETNS: 'dummy', CNI_CONTAINERID: '' });
    expect(res).toEqual({
      exitCode: 0,
      stdout: '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}',
    });
  });
});

describe('ADD', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('answers at config version %s', async (v) => {
    const res = await run('ADD', { ...CONF, cniVersion: v });
    expect(res.exitCode).toBe(0);
    const out = json(res);
    expect(out['cniVersion']).toBe(v);
    const ip = (out['ips'] as Record<string, unknown>[])[0];
    expect(ip?.['version']).toBe(v.startsWith('0.') ? '4' : undefined);
    const eth0 = (out['interfaces'] as Record<string, unknown>[])[1];
    expect(eth0?.['mtu']).toBe(v === '1.1.0' ? 1450 : undefined);
  });

  it('hands the service a typed request', async () => {
    const service = new FakeService();
    await run('ADD', {
      ...CONF,
      mtu: 1400,
      runDir: '/run/weft-test',
      capabilities: { mac: true, ips: true },
      runtimeConfig: { mac: 'C2:11:22:33:44:55', ips: ['10.42.7.9/24'] },
      args: { note: 'x' },
    }, service);
    expect(service.calls).toEqual([
      {
        method: 'add',
        arg: {
          networkName: 'weftnet',
          containerId: 'c0ffee',
          ifname: 'eth0',
          netns: '/run/netns/t',
          pod: { namespace: 'default', name: 'web-0' },
          runDir: '/run/weft-test',
          mtu: 1400,
          mac: 'c2:11:22:33:44:55',
          macField: 'runtimeConfig.mac',
          ip: '10.42.7.9',
          ipField: 'runtimeConfig.ips',
          args: { note: 'x' },
        },
        extra: undefined,
      },
    ]);
  });

  it('lays the config dns over the agent dns', async () => {
    const out = json(await run('ADD', { ...CONF, dns: { nameservers: ['1.1.1.1'], domain: 'corp' } }));
    expect(out['dns']).toEqual({ nameservers: ['1.1.1.1'], domain: 'corp', search: ['weft.local'] });
  });

  it('merges over a prevResult and answers at the config version', async () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'lo' }],
      ips: [{ version: '4', address: '192.168.1.2/24', interface: 0 }],
    };
    const out = json(await run('ADD', { ...CONF, cniVersion: '0.4.0', prevResult }));
    expect((out['interfaces'] as unknown[]).length).toBe(3);
    expect(out['ips']).toEqual([
      { version: '4', address: '192.168.1.2/24', interface: 0 },
      { version: '4', address: '10.42.7.5/24', gateway: '10.42.7.1', interface: 2 },
    ]);
  });

  it('rejects unknown CNI_ARGS without IgnoreUnknown (code 2)', async () => {
    const service = new FakeService();
    const out = expectError(await run('ADD', CONF, service, { CNI_ARGS: 'K8S_POD_NAME=a;COLOR=blue' }), 2);
    expect(out['msg']).toContain('COLOR=blue');
    expect(service.calls).toEqual([]);
  });
});

describe('DEL', () => {
  it('succeeds with empty stdout', async () => {
    expect(await run('DEL')).toEqual({ stdout: '', exitCode: 0 });
  });

  it('succeeds when the service does not know the attachment', async () => {
    expect(await run('DEL', CONF, new FakeService({ code: 'NOT_FOUND' }))).toEqual({ stdout: '', exitCode: 0 });
  });

  it('goes ahead without a namespace', async () => {
    const service = new FakeService();
    expect((await run('DEL', CONF, service, { CNI_NETNS: '' })).exitCode).toBe(0);
    expect(service.calls[0]?.arg).not.toHaveProperty('netns');
  });

  it('passes a prevResult along', async () => {
    const service = new FakeService();
    await run('DEL', { ...CONF, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.42.7.5/24' }] } }, service);
    expect((service.calls[0]?.arg as DelRequest).prevResult?.ips).toEqual([{ address: '10.42.7.5/24' }]);
  });

  it('asks to retry when the agent is unavailable', async () => {
    const out = expectError(await run('DEL', CONF, new FakeService({ code: 'UNAVAILABLE' })), 11);
    expect(out['msg']).toBe('try again later: is the weft agent running? check `weft status`');
  });
});

describe('CHECK', () => {
  const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/t' }], ips: [{ address: '10.42.7.5/24', interface: 0 }] };

  it('compares against prevResult', async () => {
    const service = new FakeService();
    expect(await run('CHECK', { ...CONF, cniVersion: '1.0.0', prevResult }, service)).toEqual({ stdout: '', exitCode: 0 });
    expect((service.calls[0]?.arg as CheckRequest).prevResult.interfaces).toEqual([{ name: 'eth0', sandbox: '/run/netns/t' }]);
  });

  it('needs prevResult (code 7)', async () => {
    expectError(await run('CHECK'), 7);
  });

  it('does not exist before 0.4.0 (code 1)', async () => {
    expectError(await run('CHECK', { ...CONF, cniVersion: '0.3.1', prevResult }), 1, '0.3.1');
  });

  it('reports an unknown container as code 3', async () => {
    expectError(await run('CHECK', { ...CONF, prevResult }, new FakeService({ code: 'NOT_FOUND' })), 3);
  });
});

describe('STATUS', () => {
  it.each<[ServiceStatus, number | undefined]>([
    [{ ready: true }, undefined],
    [{ ready: false, reason: 'no subnet lease yet' }, 50],
    [{ ready: false, reason: 'vxlan device gone', disruptsExisting: true }, 51],
  ])('%j -> %s', async (status, code) => {
    const res = await run('STATUS', CONF, new FakeService('ok', status), { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' });
    if (code === undefined) expect(res).toEqual({ stdout: '', exitCode: 0 });
    else expect(expectError(res, code)['details']).toBe(status.reason);
  });

  it('is not available when the backend is unreachable (50, not 11)', async () => {
    expectError(await run('STATUS', CONF, new FakeService({ code: 'UNAVAILABLE' })), 50);
  });

  it('does not exist before 1.1.0 (code 1)', async () => {
    expectError(await run('STATUS', { ...CONF, cniVersion: '1.0.0' }), 1, '1.0.0');
  });
});

describe('GC', () => {
  const gcEnv = { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' };

  it.each([
    ['cni.dev/valid-attachments', [{ containerID: 'c1', ifname: 'eth0' }]],
    ['cni.dev/attachments', [{ containerID: 'c1', ifname: 'eth0' }]],
    ['cni.dev/valid-attachments', []],
  ])('hands %s (%j) to the service', async (key, list) => {
    const service = new FakeService();
    expect(await run('GC', { ...CONF, [key]: list }, service, gcEnv)).toEqual({ stdout: '', exitCode: 0 });
    expect(service.calls).toEqual([
      { method: 'gc', arg: list.map((a) => ({ containerId: a.containerID, ifname: a.ifname })), extra: 'weftnet' },
    ]);
  });

  it('refuses to run without the list', async () => {
    const service = new FakeService();
    expectError(await run('GC', CONF, service, gcEnv), 7);
    expect(service.calls).toEqual([]);
  });

  it('needs CNI_PATH (code 4)', async () => {
    expectError(await run('GC', { ...CONF, 'cni.dev/valid-attachments': [] }, new FakeService(), { ...gcEnv, CNI_PATH: '' }), 4);
  });
});

describe('never throws', () => {
  it('times out a hanging service as try-again-later', async () => {
    const out = expectError(await run('ADD', CONF, new FakeService('hang'), {}, 20), 11);
    expect(out['details']).toContain('20 ms');
  });

  it('turns a synchronous service bug into code 999', async () => {
    expectError(await run('ADD', CONF, new FakeService('throw-sync')), 999);
  });

  it('reports env errors in the config version it can read', async () => {
    const out = expectError(await run('ADD', { ...CONF, cniVersion: '0.4.0' }, new FakeService(), { CNI_IFNAME: '' }), 4, '0.4.0');
    expect(out['msg']).toBe('invalid environment variables: CNI_IFNAME');
  });

  it('reports undecodable stdin as code 6 in the latest version', async () => {
    expectError(await run('ADD', '{"cniVersion": "1.0.0",'), 6);
  });

  it('reports a missing CNI_COMMAND as code 4', async () => {
    const res = await handleCniRequest({ env: {}, stdin: '' }, new FakeService());
    expect(expectError(res, 4)['msg']).toBe('invalid environment variables: CNI_COMMAND');
  });
});
