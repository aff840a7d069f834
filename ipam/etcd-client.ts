// Builds the etcd3 client from the operator's flags (endpoints, TLS files) and
// turns the client's assorted exceptions into WeftError UNAVAILABLE with a
// message that says what to check. Nothing else in weft constructs a client.

import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { ExponentialBackoff } from 'cockatiel';
import { WeftError, isWeftError } from './errors.js';

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
    options.credentials = {
      rootCertificate: readTlsFile('--etcd-cafile', opts.caFile),
      ...(opts.keyFile !== undefined ? { privateKey: readTlsFile('--etcd-keyfile', opts.keyFile) } : {}),
      ...(opts.certFile !== undefined ? { certChain: readTlsFile('--etcd-certfile', opts.certFile) } : {}),
    };
  }
  return new Etcd3(options);
}

/** Wraps any failure of an etcd call as UNAVAILABLE, naming the operation. */
export function etcdUnavailable(op: string, err: unknown, endpoints: readonly string[]): WeftError {
  if (isWeftError(err)) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new WeftError(
    'UNAVAILABLE',
    `etcd ${op} failed: ${reason} (endpoints ${endpoints.join(',')}; check that etcd runs and --etcd-endpoints and the --etcd-*file TLS flags are right)`,
    { op, reason },
  );
}
