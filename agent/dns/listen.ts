// `--dns-listen`: where the DNS server listens. "gateway" (the default) means
// the bridge's gateway address of this host's subnet, port 53, known only once
// the lease is held; "gateway:PORT" the same on another port; otherwise a
// comma-separated list of ADDRESS:PORT ([v6]:PORT); empty turns the server off.

import { isIP } from 'node:net';
import { WeftError } from '../../ipam/errors.js';
import type { ListenAddress } from './dns-server.js';

export type ListenSpec = { readonly kind: 'off' } | { readonly kind: 'gateway'; readonly port: number } | { readonly kind: 'fixed'; readonly addresses: ListenAddress[] };

function port(s: string, raw: string): number {
  const p = Number(s);
  if (!/^\d+$/.test(s) || p < 0 || p > 65535) throw bad(raw);
  return p;
}

function bad(raw: string): WeftError {
  return new WeftError('INVALID_ARGUMENT', `--dns-listen: "${raw}" is not "gateway", "gateway:PORT", a list of ADDRESS:PORT, or empty (off)`, { flag: 'dns-listen', value: raw });
}

export function parseListen(raw: string): ListenSpec {
  const s = raw.trim();
  if (s === '') return { kind: 'off' };
  if (s === 'gateway') return { kind: 'gateway', port: 53 };
  if (s.startsWith('gateway:')) return { kind: 'gateway', port: port(s.slice('gateway:'.length), raw) };
  const addresses = s.split(',').map((part) => {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(part.trim()) ?? /^([^:]+):(\d+)$/.exec(part.trim());
    if (!m || isIP(m[1]!) === 0) throw bad(raw);
    return { host: m[1]!, port: port(m[2]!, raw) };
  });
  return { kind: 'fixed', addresses };
}
