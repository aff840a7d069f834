#!/usr/bin/env node
// `weft`: the one executable for the daemon and the operator's commands.
// Parses the command and its flags (each also a WEFT_* variable), runs it,
// and maps failures to the documented exit codes with a one-line message.

import { readFileSync } from 'node:fs';
import type { EtcdSubnetRegistry } from '../ipam/etcd-registry.js';
import { WeftError, isWeftError } from '../ipam/errors.js';
import { parseNetworkConfig, serializeNetworkConfig } from '../ipam/network-config.js';
import { formatCidr } from '../ipam/cidr.js';
import { attachmentCommands } from './commands/attach.js';
import { dnsCommand, dnsStatusLine } from './commands/dns.js';
import { leasesJson, leasesTable, skippedWarnings } from './commands/leases.js';
import { gossipStatusLine, peersTable, type PeersReply } from './commands/peers.js';
import { generateKey } from '../ipam/keys.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatHelp, parseArgs, type FlagSpec, type FlagValues } from './flags.js';
import { detectUnderlay } from './host-info.js';
import { readNetworkConfig } from './network-config-source.js';
import { agentFlags, etcdFlags, etcdOptionsFrom, hostFlags, runDirFlag } from './options.js';
import { callAgent } from './api/client.js';
import { cniInstallFlags, cniInstallOptionsFrom, installCni } from './cni-install.js';
import type { AgentStatus } from './api/types.js';

const VERSION = '0.1.0';

const helpFlag: FlagSpec = { name: 'help', type: 'bool', help: 'show this help' };

interface Command {
  readonly usage: string;
  readonly summary: string;
  readonly flags: readonly FlagSpec[];
  run(v: FlagValues, positional: string[]): Promise<number>;
}

// etcd3 (gRPC, protobufjs) and pino take most of a second to load; commands
// that do not need them (`weft attach`, `status`, `ps`, `version`) must not
// pay for them, so they are imported where they are used.
async function openRegistry(v: FlagValues): Promise<EtcdSubnetRegistry> {
  const [{ createEtcdClient }, { EtcdSubnetRegistry }] = await Promise.all([import('../ipam/etcd-client.js'), import('../ipam/etcd-registry.js')]);
  const opts = etcdOptionsFrom(v);
  return new EtcdSubnetRegistry(createEtcdClient(opts), v['etcd-prefix'] as string, opts.endpoints);
}

async function withRegistry<T>(v: FlagValues, fn: (r: EtcdSubnetRegistry) => Promise<T>): Promise<T> {
  const registry = await openRegistry(v);
  try {
    return await fn(registry);
  } finally {
    registry.close();
  }
}

function readConfigInput(positional: string[], file: string | undefined): string {
  if (file !== undefined) {
    try {
      return readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (e) {
      throw new WeftError('INVALID_ARGUMENT', `--file ${file}: ${(e as Error).message}`);
    }
  }
  if (positional.length !== 1) {
    throw new WeftError('INVALID_ARGUMENT', `usage: weft config set '<json>' | --file FILE (got ${positional.length} arguments)`);
  }
  return positional[0]!;
}

const commands: Record<string, Command> = {
  agent: {
    usage: 'weft agent [flags]',
    summary: 'run the per-host agent (leases a subnet, keeps it, watches the others)',
    flags: agentFlags,
    run: async (v) => {
      const [{ runAgent }, { createLogger }] = await Promise.all([import('./commands/agent.js'), import('./log.js')]);
      return runAgent(v, createLogger(v['log-level'] as string));
    },
  },
  leases: {
    usage: 'weft leases [--json] [etcd flags]',
    summary: 'list the subnet leases of the network',
    flags: [...etcdFlags, { name: 'json', type: 'bool', help: 'print JSON instead of a table' }],
    run: (v) =>
      withRegistry(v, async (registry) => {
        const list = await registry.list();
        process.stderr.write(skippedWarnings(list));
        process.stdout.write(v['json'] === true ? leasesJson(list) : leasesTable(list));
        return EXIT.OK;
      }),
  },
  config: {
    usage: "weft config show [--raw] | weft config set ('<json>' | --file FILE|-) [etcd flags]",
    summary: 'read or write the network config (validated before it is written)',
    flags: [
      ...etcdFlags,
      { name: 'raw', type: 'bool', help: 'show: print the stored text as is, without defaults filled in' },
      { name: 'file', type: 'string', help: 'set: read the config from FILE (- for stdin)' },
    ],
    run: (v, positional) =>
      withRegistry(v, async (registry) => {
        const [verb, ...rest] = positional;
        const prefix = registry.prefix;
        if (verb === 'show') {
          if (v['raw'] === true) {
            const raw = await registry.getConfig();
            if (raw === undefined) throw new WeftError('NOT_FOUND', `no network config at ${prefix}/config`);
            process.stdout.write(raw.endsWith('\n') ? raw : raw + '\n');
          } else {
            process.stdout.write(serializeNetworkConfig(await readNetworkConfig(registry, prefix)) + '\n');
          }
          return EXIT.OK;
        }
        if (verb === 'set') {
          const text = readConfigInput(rest, v['file'] as string | undefined);
          const cfg = parseNetworkConfig(text);
          await registry.putConfig(text.trim() + '\n');
          process.stderr.write(`network config written to ${prefix}/config (Network ${formatCidr(cfg.network)}, SubnetLen ${cfg.subnetLen}, backend ${cfg.backend.type})\n`);
          return EXIT.OK;
        }
        throw new WeftError('INVALID_ARGUMENT', `usage: ${commands['config']!.usage}`);
      }),
  },
  leave: {
    usage: 'weft leave [etcd and host flags]',
    summary: "give this host's subnet back (delete its lease); stop the agent first",
    flags: [...etcdFlags, ...hostFlags],
    run: (v) =>
      withRegistry(v, async (registry) => {
        const { publicIP } = detectUnderlay({ iface: v['iface'] as string | undefined, publicIP: v['public-ip'] as string | undefined });
        const mine = (await registry.list()).leases.filter((l) => l.attrs.publicIP === publicIP);
        for (const l of mine) {
          await registry.remove(l.subnet, l.leaseId);
          await registry.revokeId(l.leaseId);
          process.stderr.write(`released ${formatCidr(l.subnet)} (public IP ${publicIP})\n`);
        }
        if (mine.length === 0) process.stderr.write(`no lease held by ${publicIP}: nothing to release\n`);
        return EXIT.OK;
      }),
  },
  status: {
    usage: 'weft status [--run-dir DIR] [--json]',
    summary: "what the local agent holds and sees (asks it over <run-dir>/weft.sock)",
    flags: [runDirFlag, { name: 'json', type: 'bool', help: 'print JSON' }],
    run: async (v) => {
      const st = await callAgent<AgentStatus>(v['run-dir'] as string, 'GET', '/v1/status');
      if (v['json'] === true) {
        process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      } else {
        const rows: [string, string][] = [
          ['ready', st.ready ? 'yes' : `no (waiting for ${st.waitingFor.join(', ')})`],
          ['public IP', `${st.publicIP} (${st.iface})`],
          ['network', st.network ?? '-'],
          ['subnet', st.subnet ?? '-'],
          ['backend', st.backend ?? '-'],
          ['MTU', st.mtu !== undefined ? String(st.mtu) : '-'],
          ['leases seen', `${st.leases.length} (etcd revision ${st.revision})`],
          ['gossip', gossipStatusLine(st['gossip'])],
        ];
        const dns = dnsStatusLine(st);
        if (dns !== undefined) rows.push(['DNS', dns]);
        process.stdout.write(rows.map(([k, val]) => `${k.padEnd(12)} ${val}`).join('\n') + '\n');
      }
      return st.ready ? EXIT.OK : EXIT.UNAVAILABLE;
    },
  },
  peers: {
    usage: 'weft peers [--run-dir DIR] [--json]',
    summary: 'the gossip members this agent knows: state (alive, suspect, dead, left), incarnation, last contact',
    flags: [runDirFlag, { name: 'json', type: 'bool', help: 'print JSON' }],
    run: async (v) => {
      const r = await callAgent<PeersReply>(v['run-dir'] as string, 'GET', '/v1/peers');
      process.stdout.write(v['json'] === true ? JSON.stringify(r, null, 2) + '\n' : peersTable(r, Date.now()));
      return EXIT.OK;
    },
  },
  keygen: {
    usage: 'weft keygen',
    summary: 'print a fresh random key (base64, 32 bytes) for --key-file',
    flags: [],
    run: async (_v, positional) => {
      if (positional.length > 0) throw new WeftError('INVALID_ARGUMENT', `usage: weft keygen (takes no arguments, got ${positional.length})`);
      process.stdout.write(generateKey() + '\n');
      return EXIT.OK;
    },
  },
  ...attachmentCommands,
  dns: dnsCommand,
  'install-cni': {
    usage: 'weft install-cni [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--cni-conf-name NAME] [--cni-network-name NAME] [--cni-version V] [--cni-portmap auto|yes|no] [--run-dir DIR]',
    summary: 'install the CNI plugin (as `weft`) and a conflist for runtimes, at once (the agent does it itself, once ready, with --install-cni)',
    flags: [...cniInstallFlags, runDirFlag],
    run: async (v) => {
      const opts = cniInstallOptionsFrom(v);
      const r = await installCni(opts);
      process.stdout.write(r.notes.map((l) => `${l}\n`).join(''));
      for (const w of r.warnings) process.stderr.write(`weft: warning: ${w}\n`);
      // Installing without an agent is allowed (an init container does it first); say what runtimes see meanwhile.
      const ready = await callAgent<AgentStatus>(opts.runDir, 'GET', '/v1/status', undefined, 1000).then((s) => s.ready, () => false);
      if (!ready) {
        process.stdout.write(`no ready agent answers at ${opts.runDir}/weft.sock yet: until \`weft agent --run-dir ${opts.runDir}\` is ready, ADD answers CNI code 11 (try again later) and STATUS 50\n`);
      }
      return EXIT.OK;
    },
  },
  version: {
    usage: 'weft version',
    summary: 'print the version',
    flags: [],
    run: async () => {
      process.stdout.write(`weft ${VERSION}\n`);
      return EXIT.OK;
    },
  },
};

function mainHelp(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `weft ${VERSION}: overlay network agent for containers\n\nUsage: weft COMMAND [flags]   (weft COMMAND --help for its flags)\n\nCommands:\n${rows.join('\n')}\n\nExit codes: 0 ok, 1 internal error, 2 usage, 3 invalid network config, 4 etcd or agent unreachable, 5 host not as the flags say, 6 another agent serves this --run-dir.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(mainHelp());
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`weft: unknown command "${name}"\n\n${mainHelp()}`);
    return EXIT.USAGE;
  }
  const flags = [...command.flags, helpFlag];
  const { values, positional } = parseArgs(rest, flags, process.env);
  if (values['help'] === true) {
    process.stdout.write(formatHelp(`Usage: ${command.usage}\n\n${command.summary}`, flags));
    return EXIT.OK;
  }
  return command.run(values, positional);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // etcd3's gRPC channels can hold the loop open after close(); the work is done.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    const message = isWeftError(err) ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`weft: ${message}\n`);
    process.exit(exitCodeFor(err));
  },
);
