// Throwaway certificates for TLS tests (etcd with client-cert auth).
//
// Made with the `openssl` CLI so the test needs no crypto library and the
// files are exactly what an operator would produce. EC P-256 keys: they are
// generated in milliseconds, unlike RSA. Extensions go through -extfile
// (written by us), which works on every OpenSSL 3.x.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCerts {
  /** CA certificate (PEM path); trust it on both sides. */
  ca: string;
  server: CertPair;
  client: CertPair;
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '7';

async function signed(dir: string, name: string, subject: string, ext: string, ca: CertPair): Promise<CertPair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, ext);
  await run(['openssl', 'req', ...KEY_ARGS, '-keyout', pair.key, '-out', csr, '-subj', subject]);
  await run([
    'openssl', 'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-out', pair.cert, '-days', DAYS, '-extfile', extFile,
  ]);
  return pair;
}

/** A CA, a server cert valid for `serverIp` and 127.0.0.1, and a client cert, as PEM files in `dir`. */
export async function makeTestCerts(dir: string, opts: { serverIp: string }): Promise<TestCerts> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await run([
    'openssl', 'req', '-x509', ...KEY_ARGS, '-keyout', ca.key, '-out', ca.cert, '-days', DAYS,
    '-subj', '/CN=weft-lab-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const sans = [...new Set([opts.serverIp, '127.0.0.1'])].map((ip) => `IP:${ip}`).join(',');
  // One after the other: both signings update the CA's serial file.
  const server = await signed(dir, 'server', '/CN=weft-etcd', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`, ca);
  const client = await signed(dir, 'client', '/CN=weft-client', 'extendedKeyUsage=clientAuth\n', ca);
  return { ca: ca.cert, server, client };
}
