// The CNI_* environment of one invocation, checked against what the spec
// requires for that command. Every missing or malformed variable is reported
// in one code-4 error, so an operator driving the plugin by hand fixes them
// all in one go instead of one per attempt.

import { parseCniArgs, type CniArgs } from './args.js';
import { CniError, CniErrorCode } from './errors.js';
import { identifierProblem, ifnameProblem } from './syntax.js';
import type { CniCommand } from './version.js';

export const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

interface EnvCommon {
  /** CNI_PATH split on ':'. weft delegates to no plugin; it is kept for logs and parity. */
  path: string[];
}

/** ADD and CHECK act inside a namespace that must exist. */
export interface NamespacedEnv extends EnvCommon {
  command: 'ADD' | 'CHECK';
  containerId: string;
  ifname: string;
  netns: string;
  args: CniArgs;
}

/** DEL may come without a namespace: containerd sends an empty CNI_NETNS once the sandbox is gone. */
export interface DelEnv extends EnvCommon {
  command: 'DEL';
  containerId: string;
  ifname: string;
  netns?: string;
  args: CniArgs;
}

/** STATUS, GC and VERSION concern the network (or the plugin), not one container. */
export interface NetworkEnv extends EnvCommon {
  command: 'STATUS' | 'GC' | 'VERSION';
}

export type CniEnv = NamespacedEnv | DelEnv | NetworkEnv;

type Need = 'required' | 'optional' | 'unused';

interface Needs {
  containerId: Need;
  ifname: Need;
  netns: Need;
  path: Need;
}

/** The spec's "required environment parameters" per command (1.1.0, section 2). */
const NEEDS: Readonly<Record<CniCommand, Needs>> = {
  ADD: { containerId: 'required', ifname: 'required', netns: 'required', path: 'optional' },
  CHECK: { containerId: 'required', ifname: 'required', netns: 'required', path: 'optional' },
  DEL: { containerId: 'required', ifname: 'required', netns: 'optional', path: 'optional' },
  GC: { containerId: 'unused', ifname: 'unused', netns: 'unused', path: 'required' },
  STATUS: { containerId: 'unused', ifname: 'unused', netns: 'unused', path: 'optional' },
  VERSION: { containerId: 'unused', ifname: 'unused', netns: 'unused', path: 'unused' },
};

export function isCommand(value: string): value is CniCommand {
  return (COMMANDS as readonly string[]).includes(value);
}

/** Code 4 for a missing or unknown CNI_COMMAND: nothing else can be judged without it. */
export function parseCommand(env: Readonly<Record<string, string | undefined>>): CniCommand {
  const raw = env['CNI_COMMAND'] ?? '';
  if (isCommand(raw)) return raw;
  const why = raw === '' ? 'missing' : `unknown command ${JSON.stringify(raw)} (expected ${COMMANDS.join(', ')})`;
  throw invalidEnv([['CNI_COMMAND', why]]);
}

export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = parseCommand(env);
  const needs = NEEDS[command];
  const problems: [string, string][] = [];
  const get = (name: string, need: Need, check?: (v: string) => string | undefined): string | undefined => {
    const value = env[name] ?? '';
    if (need === 'unused') return undefined;
    if (value === '') {
      if (need === 'required') problems.push([name, 'missing']);
      return undefined;
    }
    const problem = check?.(value);
    if (problem !== undefined) problems.push([name, problem]);
    return value;
  };

  const containerId = get('CNI_CONTAINERID', needs.containerId, identifierProblem);
  const netns = get('CNI_NETNS', needs.netns, command === 'DEL' ? undefined : netnsProblem);
  const ifname = get('CNI_IFNAME', needs.ifname, ifnameProblem);
  const rawPath = get('CNI_PATH', needs.path) ?? '';
  const path = rawPath.split(':').filter((p) => p !== '');

  let args: CniArgs = { ignoreUnknown: false, pod: {}, unknown: [] };
  if (needs.containerId !== 'unused') {
    const parsed = parseCniArgs(env['CNI_ARGS'] ?? '');
    if ('problem' in parsed) problems.push(['CNI_ARGS', parsed.problem]);
    else args = parsed;
  }

  if (problems.length > 0) throw invalidEnv(problems);

  // The casts restate what NEEDS guarantees: required variables are set once no problem was found.
  const attachment = { containerId: containerId as string, ifname: ifname as string, args, path };
  switch (command) {
    case 'ADD':
    case 'CHECK':
      return { command, ...attachment, netns: netns as string };
    case 'DEL':
      return { command, ...attachment, ...(netns !== undefined && { netns }) };
    default:
      return { command, path };
  }
}

/**
 * A namespace path the agent can open. Only ADD and CHECK are held to it: DEL
 * must clean up whatever it is given, and runtimes send placeholders there.
 */
function netnsProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return 'must be an absolute path to a network namespace';
  if (value.includes('\0')) return 'must not contain NUL';
  return undefined;
}

function invalidEnv(problems: [string, string][]): CniError {
  return new CniError(
    CniErrorCode.InvalidEnvironment,
    `invalid environment variables: ${problems.map(([name]) => name).join(', ')}`,
    problems.map(([name, why]) => `${name}: ${why}`).join('; '),
  );
}
