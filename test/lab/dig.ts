// `dig` inside a lab namespace, parsed: the status and the answer records,
// for the DNS tests, the benchmark and the demo. One try, one second: a test
// that waits for a name polls (pollUntil), it never relies on dig's retries.

import type { Namespace } from './netns.js';

export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …; "TIMEOUT" when nothing came back. */
  readonly status: string;
  /** The data of the answer records of the asked type, in the order received. */
  readonly answers: string[];
  readonly flags: string[];
  readonly raw: string;
}

export async function dig(ns: Namespace, server: string, name: string, type = 'A', extra: readonly string[] = []): Promise<DigResult> {
  const r = await ns.exec(['dig', '+tries=1', '+time=1', `@${server}`, name, type, ...extra], { allowFail: true, timeoutMs: 5000 });
  const out = r.stdout;
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'TIMEOUT';
  const flags = (/;; flags: ([^;]*);/.exec(out)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(out)?.[1] ?? '';
  const answers = section
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && f[3] === type)
    .map((f) => f.slice(4).join(' '));
  return { status, answers, flags, raw: out };
}
