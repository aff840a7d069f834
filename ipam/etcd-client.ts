// Builds the etcd3 client from the operator's flags (endpoints, TLS files) and
// turns the client's assorted exceptions into WeftError UNAVAILABLE with a
// message that says what to check. Nothing else in weft constructs a client.

import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Etcd3, type IOptions } from 'etcd3';
import { ExponentialBackoff } from 'cockatiel';
import { WeftError, isWeftError } from './errors.js';
import { etcdFailureKind } from './etcd-failure.js';

export interface EtcdOptions {
  readonly endpoints: string[];
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  /** Deadline for every unary call; a hung etcd must not hang the agent. */
  readonly callTimeoutMs?: number;
  readonly dialTimeoutMs?: number;
}

function readTlsFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new WeftError('INVALID_ARGUMENT', `${flag} ${path}: cannot read it (${(e as Error).message})`, { field: flag });
  }
}

/**
 * The TLS files checked before the client is built, each failure naming its
 * file (exit 2): gRPC would otherwise fail later with a stack trace, or retry
 * forever against a key that can never match its certificate.
 */
export function checkTlsFiles(files: { ca?: Buffer; cert?: Buffer; key?: Buffer }, names: { ca?: string; cert?: string; key?: string }): void {
  const bad = (flag: string, path: string | undefined, why: string): WeftError =>
    new WeftError('INVALID_ARGUMENT', `${flag} ${path ?? ''}: ${why}`, { field: flag });
  const certs = (flag: string, path: string | undefined, data: Buffer): X509Certificate => {
    const text = data.toString('utf8');
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw bad(flag, path, 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)');
    try {
      return new X509Certificate(data);
    } catch (e) {
      throw bad(flag, path, `is not a readable PEM certificate (${(e as Error).message})`);
    }
  };
  if (files.ca !== undefined) certs('--etcd-cafile', names.ca, files.ca);
  const cert = files.cert === undefined ? undefined : certs('--etcd-certfile', names.cert, files.cert);
  if (files.key !== undefined) {
    let key;
    try {
      key = createPrivateKey(files.key);
    } catch (e) {
      throw bad('--etcd-keyfile', names.key, `is not a readable PEM private key (${(e as Error).message}); an encrypted key is not supported`);
    }
    if (cert !== undefined && !cert.checkPrivateKey(key)) {
      throw bad('--etcd-keyfile', names.key, `does not match the certificate ${names.cert ?? ''} (--etcd-certfile): give the key that certificate was issued for`);
    }
  }
}

export function createEtcdClient(opts: EtcdOptions): Etcd3 {
  if (opts.endpoints.length === 0) {
    throw new WeftError('INVALID_ARGUMENT', '--etcd-endpoints: at least one endpoint is required', { field: '--etcd-endpoints' });
  }
  const hosts = opts.endpoints.map((e) => {
    let url: URL;
    try {
      url = new URL(e);
    } catch {
      throw new WeftError('INVALID_ARGUMENT', `--etcd-endpoints: "${e}" is not a URL such as http://127.0.0.1:2379`, { field: '--etcd-endpoints' });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new WeftError('INVALID_ARGUMENT', `--etcd-endpoints: "${e}" must start with http:// or https://`, { field: '--etcd-endpoints' });
    }
    return `${url.protocol}//${url.host}`;
  });
  const tls = opts.caFile !== undefined || opts.certFile !== undefined || opts.keyFile !== undefined;
  if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) {
    throw new WeftError('INVALID_ARGUMENT', '--etcd-certfile and --etcd-keyfile go together: give both or neither', { field: '--etcd-certfile' });
  }
  const callTimeoutMs = opts.callTimeoutMs ?? 5000;
  const options: IOptions = {
    hosts,
    dialTimeout: opts.dialTimeoutMs ?? 5000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    // The default watch backoff waits up to 30 s after an etcd restart; the
    // agent's own watchdog re-lists anyway, so reconnect sooner.
    faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 3000 }).next() },
  };
  if (tls) {
    if (opts.caFile === undefined) {
      throw new WeftError('INVALID_ARGUMENT', '--etcd-cafile is required with client certificates: it is how weft trusts etcd', { field: '--etcd-cafile' });
    }
    const ca = readTlsFile('--etcd-cafile', opts.caFile);
    const key = opts.keyFile !== undefined ? readTlsFile('--etcd-keyfile', opts.keyFile) : undefined;
    const cert = opts.certFile !== undefined ? readTlsFile('--etcd-certfile', opts.certFile) : undefined;
    checkTlsFiles({ ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}) }, { ca: opts.caFile, cert: opts.certFile, key: opts.keyFile });
    options.credentials = {
      rootCertificate: ca,
      ...(key !== undefined ? { privateKey: key } : {}),
      ...(cert !== undefined ? { certChain: cert } : {}),
    };
  }
  return new Etcd3(options);
}

/** Wraps any failure of an etcd call as UNAVAILABLE, naming the operation and the kind of failure. */
export function etcdUnavailable(op: string, err: unknown, endpoints: readonly string[]): WeftError {
  if (isWeftError(err)) return err;
  const reason = err instanceof Error ? err.message : String(err);
  const kind = etcdFailureKind(err);
  return new WeftError(
    'UNAVAILABLE',
    `etcd ${op} failed (${kind}): ${reason} (endpoints ${endpoints.join(',')}; check that etcd runs and --etcd-endpoints and the --etcd-*file TLS flags are right)`,
    { op, reason, kind },
  );
}
