// `weft attach`, `weft detach`, `weft ps`: the operator's front door to the
// agent's attachment service (the same one CNI and Docker use), over the
// agent's unix socket. The CLI only turns flags into a request and a reply
// into text: validation, allocation and plumbing all happen in the agent, so
// the three front doors cannot disagree.
//
// Without --container-id the ID is derived from --netns/--pid (see
// defaultContainerId), so `weft detach --netns X` undoes `weft attach --netns X`.

import { formatTable } from '../table.js';
import { WeftError } from '../../ipam/errors.js';
import { callAgent } from '../api/client.js';
import type { Attachment, AttachmentList, DetachReply, ListedAttachment } from '../api/types.js';
import { DEFAULT_IFNAME, defaultContainerId } from '../attachments/validate.js';
import { EXIT } from '../exit-codes.js';
import type { FlagSpec, FlagValues } from '../flags.js';
import { runDirFlag } from '../options.js';

/** Attaching plumbs the kernel and fsyncs state; under a burst of 100 that takes longer than a status call. */
const ATTACH_TIMEOUT_MS = 60_000;

const targetFlags: readonly FlagSpec[] = [
  { name: 'netns', type: 'string', help: "path of the container's network namespace (e.g. /run/netns/NAME)" },
  { name: 'pid', type: 'int', min: 1, help: "a process in the container's network namespace (uses /proc/PID/ns/net)" },
  { name: 'container-id', type: 'string', help: 'the attachment\'s container ID', defaultText: 'derived from --netns/--pid' },
  { name: 'ifname', type: 'string', default: DEFAULT_IFNAME, help: 'interface name inside the container' },
  runDirFlag,
];

interface AttachmentCommand {
  readonly usage: string;
  readonly summary: string;
  readonly flags: readonly FlagSpec[];
  run(v: FlagValues, positional: string[]): Promise<number>;
}

function target(v: FlagValues, usage: string, idAlone: boolean): { containerId: string; netns?: string; pid?: number } {
  const netns = v['netns'] as string | undefined;
  const pid = v['pid'] as number | undefined;
  const given = v['container-id'] as string | undefined;
  if (netns !== undefined && pid !== undefined) throw new WeftError('INVALID_ARGUMENT', `give --netns or --pid, not both (usage: ${usage})`);
  if (netns === undefined && pid === undefined && !(idAlone && given !== undefined)) {
    throw new WeftError('INVALID_ARGUMENT', `usage: ${usage}`);
  }
  return {
    containerId: given ?? defaultContainerId({ ...(netns !== undefined ? { netns } : {}), ...(pid !== undefined ? { pid } : {}) }),
    ...(netns !== undefined ? { netns } : {}),
    ...(pid !== undefined ? { pid } : {}),
  };
}

function noPositional(positional: string[], usage: string): void {
  if (positional.length > 0) throw new WeftError('INVALID_ARGUMENT', `unexpected argument "${positional[0]}" (usage: ${usage})`);
}

/** Why an attachment is stale, for the STALE column ("-" when it is not). */
function staleText(a: ListedAttachment): string {
  if (!a.stale) return '-';
  if (a.gone?.length) return a.gone.map((g) => `${g} gone`).join(',');
  return 'old subnet';
}

export function psTable(list: AttachmentList): string {
  const header = ['CONTAINER-ID', 'IFNAME', 'NAME', 'IP', 'MAC', 'HOST-IF', 'NETNS', 'STALE'];
  const rows = list.attachments.map((a) => [a.containerId, a.ifname, a.name ?? '-', a.ip, a.mac, a.hostIfName, a.netns, staleText(a)]);
  return formatTable(header, rows);
}

const ATTACH_USAGE = 'weft attach (--netns PATH | --pid PID) [--ifname eth0] [--name NAME] [--container-id ID] [--run-dir DIR]';
const DETACH_USAGE = 'weft detach (--netns PATH | --pid PID | --container-id ID) [--ifname eth0] [--run-dir DIR]';

export const attachmentCommands: Record<string, AttachmentCommand> = {
  attach: {
    usage: ATTACH_USAGE,
    summary: 'attach a container namespace to the overlay (prints the address given)',
    flags: [
      ...targetFlags,
      { name: 'name', type: 'string', help: 'a human name shown by weft ps' },
      { name: 'mac', type: 'string', help: "the container interface's MAC (default: random)" },
      { name: 'ip', type: 'string', help: 'a specific free address of the host subnet (default: the next free one)' },
      { name: 'json', type: 'bool', help: 'print the whole attachment as JSON' },
    ],
    run: async (v, positional) => {
      noPositional(positional, ATTACH_USAGE);
      const optional = (f: 'name' | 'mac' | 'ip') => (v[f] === undefined ? {} : { [f]: v[f] as string });
      const req = { ...target(v, ATTACH_USAGE, false), ifname: v['ifname'] as string, ...optional('name'), ...optional('mac'), ...optional('ip') };
      const a = await callAgent<Attachment>(v['run-dir'] as string, 'POST', '/v1/attach', req, ATTACH_TIMEOUT_MS);
      process.stdout.write(v['json'] === true ? JSON.stringify(a, null, 2) + '\n' : `${a.ip}\n`);
      return EXIT.OK;
    },
  },
  detach: {
    usage: DETACH_USAGE,
    summary: 'detach a container interface and free its address (idempotent)',
    flags: targetFlags,
    run: async (v, positional) => {
      noPositional(positional, DETACH_USAGE);
      const { containerId } = target(v, DETACH_USAGE, true);
      const r = await callAgent<DetachReply>(v['run-dir'] as string, 'POST', '/v1/detach', { containerId, ifname: v['ifname'] as string }, ATTACH_TIMEOUT_MS);
      process.stderr.write(r.released ? `detached ${r.containerId} ${r.ifname}, released ${r.released}\n` : `${r.containerId} ${r.ifname} was not attached: nothing to do\n`);
      return EXIT.OK;
    },
  },
  ps: {
    usage: 'weft ps [--json] [--run-dir DIR]',
    summary: 'list the container attachments of the local agent',
    flags: [runDirFlag, { name: 'json', type: 'bool', help: 'print JSON instead of a table' }],
    run: async (v, positional) => {
      noPositional(positional, 'weft ps [--json] [--run-dir DIR]');
      const list = await callAgent<AttachmentList>(v['run-dir'] as string, 'GET', '/v1/attachments');
      process.stdout.write(v['json'] === true ? JSON.stringify(list, null, 2) + '\n' : psTable(list));
      return EXIT.OK;
    },
  },
};
