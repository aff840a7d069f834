// etcd with client-certificate TLS (certificates made here with openssl):
// weft reaches it with the --etcd-cafile/--etcd-certfile/--etcd-keyfile flags
// (or their WEFT_* variables) and is refused without them.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertRoot, createLab, makeTestCerts, UNDERLAY_GATEWAY, type Lab, type TestCerts } from '../lab/index.js';
import { startAgent, weft } from '../lab/weft.js';

const ETCD = `https://${UNDERLAY_GATEWAY}:2379`;

describe('etcd over TLS with client certificates', () => {
  let lab: Lab;
  let certs: TestCerts;
  let tlsArgs: string[];

  beforeAll(async () => {
    assertRoot();
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'weft-tls-'));
    certs = await makeTestCerts(dir, { serverIp: UNDERLAY_GATEWAY });
    lab = await createLab({ hosts: 1, etcdTls: { caFile: certs.ca, certFile: certs.server.cert, keyFile: certs.server.key } });
    tlsArgs = ['--etcd-endpoints', ETCD, '--etcd-cafile', certs.ca, '--etcd-certfile', certs.client.cert, '--etcd-keyfile', certs.client.key];
  });
  afterAll(async () => {
    await lab?.destroy();
    if (certs) await (await import('node:fs/promises')).rm(join(certs.ca, '..'), { recursive: true, force: true });
  });

  it('is reachable with the --etcd-*file flags', async () => {
    const set = await weft(lab.hosts[0]!, ['config', 'set', '{"Network":"10.42.0.0/16"}', ...tlsArgs]);
    expect(set.code, set.stderr).toBe(0);
    const agent = await startAgent(lab.hosts[0]!, { dir: join(lab.tmpDir, 'a'), etcd: ETCD, args: ['--iface', 'eth0', ...tlsArgs.slice(2)] });
    const st = await agent.ready();
    expect(st.subnet).toMatch(/^10\.42\./);
    await agent.proc.stop();
  });

  it('is reachable with the same settings as WEFT_* environment variables', async () => {
    const r = await weft(lab.hosts[0]!, ['leases', '--json'], {
      env: { WEFT_ETCD_ENDPOINTS: ETCD, WEFT_ETCD_CAFILE: certs.ca, WEFT_ETCD_CERTFILE: certs.client.cert, WEFT_ETCD_KEYFILE: certs.client.key },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(1);
  });

  it('is refused without a client certificate, and without TLS at all (exit 4)', async () => {
    const noCert = await weft(lab.hosts[0]!, ['leases', '--etcd-endpoints', ETCD, '--etcd-cafile', certs.ca]);
    expect(noCert.code).toBe(4);
    expect(noCert.stderr).toMatch(/etcd .* failed/);
    const plain = await weft(lab.hosts[0]!, ['leases', '--etcd-endpoints', `http://${UNDERLAY_GATEWAY}:2379`]);
    expect(plain.code).toBe(4);
  });

  it('says which flag is wrong when a TLS file is missing or half the pair is given', async () => {
    const missing = await weft(lab.hosts[0]!, ['leases', ...tlsArgs.slice(0, 2), '--etcd-cafile', '/nonexistent/ca.pem']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--etcd-cafile /nonexistent/ca.pem');
    const half = await weft(lab.hosts[0]!, ['leases', '--etcd-endpoints', ETCD, '--etcd-cafile', certs.ca, '--etcd-certfile', certs.client.cert]);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--etcd-certfile and --etcd-keyfile go together/);
  });

  it('a CA file that is not PEM, or a key that does not match its certificate, exits 2 naming the file (no stack trace)', async () => {
    const { writeFile } = await import('node:fs/promises');
    const notPem = join(lab.tmpDir, 'ca.txt');
    await writeFile(notPem, 'this is not a certificate\n');
    const badCa = await weft(lab.hosts[0]!, ['leases', '--etcd-endpoints', ETCD, '--etcd-cafile', notPem, '--etcd-certfile', certs.client.cert, '--etcd-keyfile', certs.client.key]);
    expect(badCa.code, badCa.stderr).toBe(2);
    expect(badCa.stderr).toContain(`--etcd-cafile ${notPem}: is not a PEM certificate`);
    expect(badCa.stderr).not.toMatch(/\n\s+at /);
    for (const cmd of [['leases'], ['agent', '--iface', 'eth0', '--run-dir', join(lab.tmpDir, 'mismatch-run'), '--state-dir', join(lab.tmpDir, 'mismatch-state')]]) {
      const r = await weft(lab.hosts[0]!, [...cmd, '--etcd-endpoints', ETCD, '--etcd-cafile', certs.ca, '--etcd-certfile', certs.client.cert, '--etcd-keyfile', certs.server.key]);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`--etcd-keyfile ${certs.server.key}: does not match the certificate ${certs.client.cert}`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('an etcd whose certificate the CA file does not verify: the agent says "TLS verification failed" in its warning', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const other = await makeTestCerts(await mkdtemp(join(lab.tmpDir, 'other-ca-')), { serverIp: UNDERLAY_GATEWAY });
    const agent = await startAgent(lab.hosts[0]!, {
      dir: join(lab.tmpDir, 'wrong-ca'),
      etcd: ETCD,
      args: ['--iface', 'eth0', '--etcd-cafile', other.ca, '--etcd-certfile', certs.client.cert, '--etcd-keyfile', certs.client.key],
    });
    try {
      await agent.proc.waitForOutput(/"msg":"waiting for the network config: cannot reach etcd \(TLS verification failed\)"/, 20_000);
    } finally {
      await agent.proc.stop();
    }
  });
});
